"""Run transformers' own common model tests (`ModelTesterMixin`) on the package's models.

    .venv/bin/python tests/transformers_common/run.py [pytest args, e.g. -k save_load -x]

The transformers wheel has no tests; its sdist does. This script
1. finds the installed transformers version and downloads that version's sdist (`pip download --no-binary :all:`)
   into `outputs/transformers-tests/` (kept as a cache; `--sdist PATH` uses a local copy instead);
2. copies `tests/test_modeling_common.py`, and the sdist's test modules it imports, into a temporary package
   `hf_common_tests`; a module it imports that the sdist does not ship (`exporters/test_export.py`,
   `generation/test_utils.py` in 5.x) becomes a stand-in whose imported names are empty classes. Those are the
   generation mixin (neither model generates) and the export mixin, whose export tests (torch.export, ONNX, ...)
   are therefore not run;
3. installs `parameterized` (imported by the common tests, not a dependency of this package) into the cache folder
   when the interpreter lacks it;
4. runs pytest on `test_common_models.py` with the package importable, prints passed / failed / skipped per test
   class and exits with pytest's status (non-zero when a test fails).
"""

import argparse
import ast
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
PACKAGE = "hf_common_tests"
ENTRY_MODULE = "test_modeling_common.py"


def run(command: list[str], **kwargs) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)


def fetch_sdist(version: str, cache: Path) -> Path:
    sdist = cache / f"transformers-{version}.tar.gz"
    if not sdist.exists():
        cache.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "--quiet"]
        run([*pip, f"transformers=={version}", "-d", str(cache)])
    if not sdist.exists():
        raise SystemExit(f"pip did not leave {sdist.name} in {cache}")
    return sdist


def ensure_parameterized(cache: Path) -> list[str]:
    """Paths to add to PYTHONPATH so that `parameterized` imports."""
    if importlib.util.find_spec("parameterized") is not None:
        return []
    target = cache / "site-packages"
    if not (target / "parameterized").is_dir():
        run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), "parameterized"])
    return [str(target)]


def build_package(sdist: Path, version: str, destination: Path) -> list[str]:
    """Extract the entry module and the sdist test modules it needs into `destination/PACKAGE`; write stand-ins for
    the ones the sdist lacks. Returns a line per stand-in."""
    prefix = f"transformers-{version}/tests/"
    package = destination / PACKAGE
    missing: dict[str, list[str]] = {}
    with tarfile.open(sdist) as archive:
        shipped = {m.name[len(prefix):]: m for m in archive.getmembers() if m.name.startswith(prefix) and m.isfile()}
        if ENTRY_MODULE not in shipped:
            raise SystemExit(f"{sdist} has no {prefix}{ENTRY_MODULE}: not the sdist of transformers {version}?")
        pending, done = [ENTRY_MODULE], set()
        while pending:
            relative = pending.pop()
            if relative in done:
                continue
            done.add(relative)
            source = archive.extractfile(shipped[relative]).read().decode()
            write_module(package, relative, source)
            folder = Path(relative).parent.parts
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.ImportFrom) and node.level > 0:
                    base = folder[: len(folder) - (node.level - 1)]
                    target = "/".join([*base, *(node.module or "").split(".")]) + ".py"
                    if target in shipped:
                        pending.append(target)
                    else:
                        missing.setdefault(target, []).extend(alias.name for alias in node.names)
    for target, names in missing.items():
        body = "".join(f"\n\nclass {name}:\n    pass\n" for name in dict.fromkeys(names))
        write_module(package, target, f'"""Stand-in: the transformers sdist does not ship {target}."""\n{body}')
    return [f"{target}: empty {', '.join(dict.fromkeys(names))}" for target, names in missing.items()]


def write_module(package: Path, relative: str, source: str) -> None:
    path = package / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent
    while True:  # every folder from the module's up to the package is a package
        (folder / "__init__.py").touch()
        if folder == package:
            break
        folder = folder.parent
    path.write_text(source)


def summarize(junit: Path) -> None:
    if not junit.exists():
        return
    counts: dict[str, Counter] = {}
    for case in ET.parse(junit).iter("testcase"):
        tags = {child.tag for child in case}
        outcome = "failed" if tags & {"failure", "error"} else "skipped" if "skipped" in tags else "passed"
        counts.setdefault(case.get("classname", "?").rsplit(".", 1)[-1], Counter())[outcome] += 1
    print("\nper test class:")
    for name, count in sorted(counts.items()):
        print(f"  {name}: {count['passed']} passed, {count['failed']} failed, {count['skipped']} skipped")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="Other arguments go to pytest.", allow_abbrev=False
    )
    parser.add_argument("--sdist", type=Path, help="a local transformers sdist (.tar.gz) of the installed version")
    parser.add_argument("--cache-dir", type=Path, default=REPO_ROOT / "outputs" / "transformers-tests")
    args, pytest_args = parser.parse_known_args()

    version = importlib.metadata.version("transformers")
    sdist = args.sdist or fetch_sdist(version, args.cache_dir)
    extra_paths = ensure_parameterized(args.cache_dir)
    with tempfile.TemporaryDirectory(prefix="hf-common-tests-") as tmp:
        for line in build_package(sdist, version, Path(tmp)):
            print(f"stand-in module {line}")
        env = dict(os.environ, TRANSFORMERS_MMVG_COMMON_TESTS="1")
        env["PYTHONPATH"] = os.pathsep.join([tmp, *extra_paths, *filter(None, [env.get("PYTHONPATH")])])
        # the per-class summary reads pytest's JUnit XML (the caller's own --junitxml=PATH when given)
        junit = next((REPO_ROOT / a.split("=", 1)[1] for a in pytest_args if a.startswith("--junitxml=")), None)
        junit = junit or Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", str(HERE / "test_common_models.py"), f"--junitxml={junit}",
                   "-W", "ignore::pytest.PytestUnknownMarkWarning"]  # marks registered by transformers' conftest
        print(f"transformers {version}, common tests from {sdist}", flush=True)
        status = subprocess.run([*command, *pytest_args], cwd=REPO_ROOT, env=env, check=False).returncode
        summarize(junit)
    return status


if __name__ == "__main__":
    sys.exit(main())

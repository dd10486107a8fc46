"""What every benchmark shares: the registry (`benchmark`, `BENCHMARKS`, `SUITES`), the paths, the header and section
writer of RESULTS.md, timing, and measurement in a fresh process (peak RSS)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
WORK_DIR = ROOT / "outputs" / "benchmarks"
OWN_OUTPUTS = ("benchmarks/RESULTS.md", "benchmarks/*.png")
MIB = 2**20

BENCHMARKS: dict[str, Callable[[argparse.Namespace], str]] = {}
SUITES = {
    "quick": ["tvq-speed", "mmvg-decoding", "mmvg-scaling", "train-speed", "efficiency"],
    "full": ["tvq-speed", "tvq-textshapes", "tvq-codebook", "tvq-real", "mmvg-decoding", "mmvg-scaling",
             "mmvg-quality", "mmvg-steps", "train-speed", "efficiency", "mmvg-scaling-resolution", "peer", "textcam-check",
             "mmvg-textcam-quality"],
}


def pan_source_interior(tokens, motion: str):
    """The tokens of frame t - 1 (`tokens`: ..., h, w) that a one-token camera pan `motion` moves onto the interior
    (h - 2) x (w - 2) tokens of frame t, or the same positions for `"still"`. Content slides opposite to the camera:
    panning left, token (i, j) of frame t was token (i, j - 1) of frame t - 1 (`textcam.PANS`' window step)."""
    from transformers_mmvg.data.textcam import PANS

    dx, dy = PANS[motion] if motion != "still" else (0, 0)
    height, width = tokens.shape[-2:]
    return tokens[..., 1 + dy : height - 1 + dy, 1 + dx : width - 1 + dx]


def benchmark(name: str):
    def register(function: Callable[[argparse.Namespace], str]):
        BENCHMARKS[name] = function
        return function

    return register


def machine() -> str:
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        device = f"CPU only, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    return (f"{platform.machine()} {device}; {_cpu_model()}, torch CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}; Python {platform.python_version()}, torch {torch.__version__}")


def _cpu_model() -> str:
    """The processor's model name from /proc/cpuinfo: machines of one kind differ (e.g. with or without AMX)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    names = [line.partition(":")[2].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else "unknown CPU"


def commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
        # the suite's own outputs (this file's tables, the plots) do not make the code that measured them dirty
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *(f":(exclude){path}" for path in OWN_OUTPUTS)],
            cwd=ROOT, capture_output=True, text=True,
        ).stdout
        return sha.strip() + (" (with uncommitted changes)" if dirty.strip() else "")
    except OSError:
        return "unknown"


def header(name: str, command: str) -> str:
    if torch.get_num_threads() != (os.cpu_count() or 1) and "--threads" not in command:
        command += f" --threads {torch.get_num_threads()}"
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"Command: `{command}`  \nMachine: {machine()}  \nDate: {date}; commit {commit()}\n"


def write_section(name: str, body: str) -> None:
    text = RESULTS.read_text() if RESULTS.is_file() else "# Benchmark results\n"
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    section = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    RESULTS.write_text(text)


def fresh_dir(path: Path) -> Path:
    """An empty output folder for one benchmark run (a previous run's files removed)."""
    if path.exists():
        shutil.rmtree(path)
    return path


def _best_seconds(function: Callable[[], object], repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def _status_bytes(field: str) -> int:
    """A `kB` field of /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> int:
    """Start a peak-memory measurement; returns the baseline in bytes: the current RSS, after resetting the
    high-water mark VmHWM to it (`/proc/self/clear_refs` 5, Linux >= 4.0). Where that is refused, the high-water
    mark so far (then only growth above earlier peaks is seen)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return _status_bytes("VmRSS")
    except OSError:
        return _status_bytes("VmHWM")


def _peak_rss_above(baseline: int) -> int:
    return _status_bytes("VmHWM") - baseline


def _run_snippet(snippet: str, **params) -> dict:
    """Run `snippet` in a fresh Python process and return the JSON object it printed on its last line of output.

    The snippet sees `PARAMS` (the keyword arguments, through JSON), can `import builders` and `import common` (the
    workloads, and this file's memory readers) and runs with this process's torch thread count. A fresh process is
    what makes a peak-RSS reading mean something: this one's allocator keeps the memory of earlier benchmarks."""
    prelude = (
        "import json, sys\nimport torch\n"
        f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r})\n"
        f"torch.set_num_threads({torch.get_num_threads()})\n"
        "PARAMS = json.loads(sys.argv[1])\n"
    )
    completed = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(snippet), json.dumps(params)],
                               cwd=ROOT, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed (exit {completed.returncode}):\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# A builder of builders.py makes a callable (model and inputs built); measured: the peak RSS over `warmup` calls and
# then `repeats` calls, above the RSS after the build; the mean seconds of the `repeats` calls, or their best.
_MEASURE_SNIPPET = """
import time
import builders
import common

function = getattr(builders, PARAMS["builder"])(**PARAMS["kwargs"])
baseline = common._reset_peak_rss()
for _ in range(PARAMS["warmup"]):
    function()
seconds = []
for _ in range(PARAMS["repeats"]):
    start = time.perf_counter()
    function()
    seconds.append(time.perf_counter() - start)
print(json.dumps({"peak_bytes": common._peak_rss_above(baseline), "baseline_bytes": baseline,
                  "mean_seconds": sum(seconds) / len(seconds), "best_seconds": min(seconds)}))
"""


def _measure_in_subprocess(builder: str, warmup: int, repeats: int, **kwargs) -> dict:
    """Time and peak RSS of calls of `builder(**kwargs)`'s callable, in a fresh process (see `_MEASURE_SNIPPET`)."""
    return _run_snippet(_MEASURE_SNIPPET, builder=builder, kwargs=kwargs, warmup=warmup, repeats=repeats)

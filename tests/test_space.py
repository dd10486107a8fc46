"""The Hugging Face Space settings (README.md's front matter) and what the Space installs (requirements.txt): they
name a file that exists, the Gradio the app extra allows, and the package's own dependencies."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_front_matter_is_a_gradio_space_running_app_py():
    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n")
    settings = yaml.safe_load(text.split("---\n")[1])
    assert settings["sdk"] == "gradio" and (ROOT / settings["app_file"]).is_file()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    gradio = next(spec for spec in project["optional-dependencies"]["app"] if spec.startswith("gradio"))
    major = int(settings["sdk_version"].split(".")[0])
    assert gradio == f"gradio>={major},<{major + 1}"  # the Space runs the Gradio the app is tested with
    assert settings["license"] == project["license"]["text"].lower()


def test_the_space_installs_the_packages_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    pinned = {"torch": "torch==2.14.1", "torchvision": "torchvision==0.29.1"}  # the builds `make` installs
    expected = [pinned.get(re.split(r"[<>=]", spec)[0], spec) for spec in project["dependencies"]]
    assert sorted(lines) == sorted(expected)
    assert "torch==2.14.1" in (ROOT / "Makefile").read_text()

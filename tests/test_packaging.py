"""The two ways to install the course (pip via pyproject.toml, conda via environment.yml) agree."""

import re
import tomllib
from pathlib import Path

import yaml  # installed with timm

ROOT = Path(__file__).resolve().parent.parent


def _parse(requirement: str) -> tuple[str, str]:
    """'Foo_Bar >= 1.0' -> ('foo-bar', '>=1.0')"""
    name, spec = re.match(r"^([A-Za-z0-9_.\-]+)(.*)$", requirement.replace(" ", "")).groups()
    return name.lower().replace("_", "-"), spec


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["dev"]
    return dict(_parse(r) for r in requirements)


def _environment():
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def _environment_requirements() -> dict[str, str]:
    found = {}
    for item in _environment()["dependencies"]:
        for requirement in item["pip"] if isinstance(item, dict) else [item]:
            if requirement.startswith("-e"):
                continue
            name, spec = _parse(requirement)
            if name not in ("python", "pip"):
                found[name] = spec
    return found


def test_environment_yml_names_the_same_packages_and_versions_as_pyproject():
    assert _environment_requirements() == _pyproject_requirements()


def test_environment_yml_installs_the_package_itself():
    pip_section = next(
        item["pip"] for item in _environment()["dependencies"] if isinstance(item, dict)
    )
    assert "-e ." in pip_section


def test_environment_yml_uses_conda_forge():
    assert _environment()["channels"] == ["conda-forge"]

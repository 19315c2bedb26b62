"""The two ways to install the course (pip via pyproject.toml, conda via environment.yml) agree."""

import json
import re
import sys
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


def _lower_bound(spec: str) -> str:
    """'>=2.6' -> '2.6'"""
    match = re.fullmatch(r">=([\d.]+)", spec)
    assert match, f"expected a lower bound such as >=2.6, got {spec!r}"
    return match.group(1)


def test_the_floor_constraints_pin_pyprojects_lower_bounds():
    """`make test` runs the suite on the oldest torch and torchvision that pyproject allows."""
    pins = dict(
        line.split("==")
        for line in (ROOT / "constraints-floor.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert set(pins) == {"torch", "torchvision"}
    for name, version in pins.items():
        bound = _lower_bound(_pyproject_requirements()[name]).split(".")  # '2.6' -> 2.6.0
        assert version.split(".") == (bound + ["0", "0"])[:3], f"{name}: {version} != {bound}"


def test_every_package_a_notebook_imports_is_a_runtime_dependency():
    """`pip install .` alone must run every notebook: nothing they import may be dev-only."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_parse(r)[0] for r in project["dependencies"]}
    imported = set()
    for path in ROOT.glob("notebooks/**/*.ipynb"):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                imported |= set(re.findall(r"^\s*(?:from|import)\s+(\w+)", source, re.M))
    third_party = imported - set(sys.stdlib_module_names) - {"mixer_edu"}
    assert {"torch", "timm"} <= third_party, "the check reads the notebooks' imports"
    assert third_party <= runtime, f"imported but not runtime dependencies: {third_party - runtime}"

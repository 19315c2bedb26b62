"""The support modules import each other without a cycle, not even through a lazy import.

A cycle can hide behind an import inside a function (the module imports fine, in any order), so
`test_reading_path.test_every_module_imports_on_its_own` cannot see it: here every import
statement of every `mixer_edu/support/*.py` is read from the source, wherever it stands.
"""

import ast
from pathlib import Path

import mixer_edu

SUPPORT = Path(mixer_edu.__file__).resolve().parent / "support"


def sibling_imports(path: Path) -> set[str]:
    """The modules of `path`'s folder that `path` imports, at the top or inside a function:
    `from . import a`, `from .a import b`, `import pkg.a` and `from pkg import a` (`pkg` the
    folder's package, here `mixer_edu.support`)."""
    package = "mixer_edu." + path.parent.name
    siblings = {p.stem for p in path.parent.glob("*.py")} - {"__init__"}
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 1:  # from . / from .a
            base = [node.module] if node.module else []
            names = [".".join([package, *base, alias.name]) for alias in node.names]
            names += [".".join([package, *base])]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:  # `from .. import x` leaves the folder
            continue
        for name in names:
            first = name.removeprefix(package + ".").split(".")[0]
            if name.startswith(package + ".") and first in siblings:
                found.add(first)
    return found - {path.stem}


def import_cycle(folder: Path) -> list[str] | None:
    """One cycle of imports between the modules of `folder` (`['a', 'b', 'a']`), or None."""
    graph = {p.stem: sibling_imports(p) for p in folder.glob("*.py") if p.stem != "__init__"}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module) :] + [module]
        if module in done:
            return None
        for imported in sorted(graph[module]):
            if cycle := visit(imported, [*path, module]):
                return cycle
        done.add(module)
        return None

    for module in sorted(graph):
        if cycle := visit(module, []):
            return cycle
    return None


def test_support_modules_import_each_other_without_a_cycle():
    cycle = import_cycle(SUPPORT)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_benches_build_on_bench_core_and_only_the_command_imports_them_all():
    assert {"bench_core", "bench_loop", "bench_memory"} <= sibling_imports(SUPPORT / "bench.py")
    for module in ("bench_loop", "bench_memory"):
        imported = sibling_imports(SUPPORT / f"{module}.py")
        assert "bench_core" in imported and not imported & {"bench", "bench_loop", "bench_memory"}


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path):
    folder = tmp_path / "support"  # read as the package mixer_edu.support
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "a.py").write_text("from .b import run\n")
    (folder / "b.py").write_text("def run():\n    from mixer_edu.support import c\n")
    (folder / "c.py").write_text("import json\n\n\ndef later():\n    from . import a\n")
    assert import_cycle(folder) == ["a", "b", "c", "a"]
    (folder / "c.py").write_text("from .. import data\n")  # outside the folder: no cycle
    assert import_cycle(folder) is None

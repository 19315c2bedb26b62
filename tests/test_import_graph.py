"""The package stands in two true layers, with no import cycle, not even through a lazy import.

- the machinery, `mixer_edu/support/`, imports nothing else of `mixer_edu`;
- the lessons (the modules directly in `mixer_edu/`) import lessons and the machinery only;
- above them, the tools (`mixer_edu/tools/`), the pictures (`viz/`) and the exercises
  (`exercises/`) import whatever they need, and nothing below imports them;
- the notebooks import lessons, `viz`, `exercises` and the one course door, `tools.course`.

Every import statement is read from the source, wherever it stands (at the top, or inside a
function, where a cycle hides: the module still imports fine in any order), and so is every
`importlib.import_module("mixer_edu...")` with a written-out name.
"""

import ast
import json
from pathlib import Path

import pytest

import mixer_edu

PACKAGE = Path(mixer_edu.__file__).resolve().parent
NOTEBOOKS = PACKAGE.parent / "notebooks"
ABOVE_THE_LESSONS = ("mixer_edu.tools", "mixer_edu.viz", "mixer_edu.exercises")
NOTEBOOK_DOORS = ("mixer_edu.viz", "mixer_edu.exercises", "mixer_edu.tools.course")


def module_name(path: Path, root: Path) -> str:
    """`root/mixer_edu/support/paths.py` -> `mixer_edu.support.paths` (a package: its own name)."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, root: Path) -> set[str]:
    """Every dotted name `path` imports, relative imports resolved: for `from a import b` both
    `a` and `a.b` (b may be a module or a name in a)."""
    package = module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif (  # importlib.import_module("mixer_edu.mixer")
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(str(node.args[0].value))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # a module named in a string that is imported elsewhere (an allow-list)
            if node.value.startswith("mixer_edu.") and " " not in node.value:
                found.add(node.value)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """`{module: the package's modules it imports}` for every module under `root`."""
    paths = {module_name(p, root): p for p in root.rglob("*.py") if p.name != "__main__.py"}
    graph = {}
    for name, path in paths.items():
        imported = set()
        for dotted in imported_names(path, root):
            while dotted and dotted not in paths:  # `a.b.name` -> the module `a.b`
                dotted = dotted.rpartition(".")[0]
            if dotted and dotted != name and not name.startswith(dotted + "."):
                imported.add(dotted)  # (a module's own package runs first anyway)
        graph[name] = imported
    return graph


def layer(module: str) -> str:
    if module.startswith("mixer_edu.support"):
        return "support"
    if module.startswith(ABOVE_THE_LESSONS):
        return "above"
    return "lesson"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """'a -> b' for every import that runs up a floor (support < lessons < tools, viz, ...)."""
    order = {"support": 0, "lesson": 1, "above": 2}
    return sorted(
        f"{module} -> {imported}"
        for module, imports in graph.items()
        for imported in imports
        if order[layer(imported)] > order[layer(module)]
        and imported != "mixer_edu"  # the package's __init__ gathers the lessons' names
    )


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of imports (`['a', 'b', 'a']`), or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module) :] + [module]
        if module in done:
            return None
        for imported in sorted(graph.get(module, ())):
            if cycle := visit(imported, [*path, module]):
                return cycle
        done.add(module)
        return None

    for module in sorted(graph):
        if cycle := visit(module, []):
            return cycle
    return None


@pytest.fixture(scope="module")
def graph():
    graph = import_graph(PACKAGE)
    # `mixer_edu/__init__.py` imports the lessons for `from mixer_edu import MlpMixer`; every
    # submodule runs it first, so it is the root of the tree, not a cycle.
    graph.pop("mixer_edu")
    for imports in graph.values():
        imports.discard("mixer_edu")
    return graph


def test_the_machinery_imports_no_lesson_and_the_lessons_import_no_tool(graph):
    assert {layer(module) for module in graph} == {"support", "lesson", "above"}
    assert upward_imports(graph) == []


def test_the_package_has_no_import_cycle(graph):
    cycle = import_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_notebooks_import_lessons_viz_exercises_and_the_course_door_only():
    lessons = {name for name, _ in import_graph(PACKAGE).items() if layer(name) == "lesson"}
    wrong = []
    for path in sorted(NOTEBOOKS.rglob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        source = "\n".join(line for line in source.splitlines() if not line.startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("mixer_edu") and name != "mixer_edu":
                    if name not in lessons and not name.startswith(NOTEBOOK_DOORS):
                        wrong.append(f"{path.relative_to(NOTEBOOKS)}: {name}")
    assert wrong == []


def test_the_benches_build_on_bench_core_and_only_the_command_imports_them_all(graph):
    tools = "mixer_edu.tools."
    benches = {tools + name for name in ("bench_core", "bench_loop", "bench_memory")}
    assert benches <= graph[tools + "bench"]
    for module in ("bench_loop", "bench_memory"):
        imported = graph[tools + module]
        assert tools + "bench_core" in imported
        assert not imported & {tools + "bench", tools + "bench_loop", tools + "bench_memory"}


def write_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "mixer_edu"
    for name, text in {"__init__.py": "", **files}.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    return package


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path):
    package = write_package(
        tmp_path,
        {
            "support/__init__.py": "",
            "support/a.py": "from .b import run\n",
            "support/b.py": "def run():\n    from mixer_edu.support import c\n",
            "support/c.py": "import json\n\n\ndef later():\n    from . import a\n",
        },
    )
    graph = import_graph(package)
    assert import_cycle(graph) == ["mixer_edu.support.a", "mixer_edu.support.b"] + [
        "mixer_edu.support.c",
        "mixer_edu.support.a",
    ]
    (package / "support/c.py").write_text("from .. import data\n")
    assert import_cycle(import_graph(package)) is None


def test_an_upward_import_is_found_inside_a_function_and_through_importlib(tmp_path):
    package = write_package(
        tmp_path,
        {
            "mixer.py": "",
            "support/__init__.py": "",
            "support/checkpoint.py": "def load():\n    from ..mixer import MlpMixer\n",
            "support/registry.py": "import importlib\nimportlib.import_module('mixer_edu.mixer')\n",
            "tools/__init__.py": "",
            "tools/bench.py": "",
            "train.py": "def main():\n    from .tools import bench\n",
        },
    )
    assert upward_imports(import_graph(package)) == [
        "mixer_edu.support.checkpoint -> mixer_edu.mixer",
        "mixer_edu.support.registry -> mixer_edu.mixer",
        "mixer_edu.train -> mixer_edu.tools",
        "mixer_edu.train -> mixer_edu.tools.bench",
    ]

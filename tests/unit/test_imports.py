"""How celeriac's modules import one another: no cycles, and a light ``import celeriac``.

The import graph is read from the source: the imports a module runs when it is imported
(at its top level, class bodies and module-level ``if``/``try`` included), leaving out
``if TYPE_CHECKING:`` blocks and imports inside functions. A cycle there is what made the
core modules reach into ``app.py`` from inside functions; ``celeriac._state`` holds what
they share instead.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import celeriac

PACKAGE_DIR = Path(celeriac.__file__).parent

# The modules that used to import one another in a circle, and the leaf that replaced it.
CORE = ("app", "task", "canvas", "result", "publish", "control", "_bridge", "builtins", "execution")
STATE = "celeriac._state"


def module_files() -> dict[str, Path]:
    files = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = ["celeriac", *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_statements(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """The import statements run when a module is imported (not in functions, not typing-only)."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                found += _import_statements(node.body)
            found += _import_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                found += _import_statements(block)
        elif isinstance(node, ast.With | ast.ClassDef):
            found += _import_statements(node.body)
    return found


def runtime_imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The celeriac modules that importing ``name`` imports directly."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _import_statements(ast.parse(path.read_text(), str(path)).body):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            source = ".".join([*base, node.module] if node.module else base)
        else:
            source = node.module or ""
        targets.add(source)
        targets.update(f"{source}.{alias.name}" for alias in node.names)  # from package import submodule
    found = set()
    for target in targets:
        parts = target.split(".")
        # Importing a.b.c runs a/__init__ and a/b/__init__ first.
        found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in modules)
    # A module's own packages are being imported already when it runs (their __init__ comes
    # first); importing from them is the usual package pattern, not a cycle.
    own = name.split(".")
    found -= {".".join(own[:i]) for i in range(1, len(own) + 1)}
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: runtime_imports(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules in order, the first repeated at the end), or None."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path: list[str] = []
        on_path: dict[str, int] = {}
        stack = [(start, iter(sorted(graph[start])))]
        path.append(start)
        on_path[start] = 0
        while stack:
            node, edges = stack[-1]
            step = next(edges, None)
            if step is None:
                stack.pop()
                path.pop()
                del on_path[node]
                done.add(node)
            elif step in on_path:
                return [*path[on_path[step]:], step]
            elif step not in done and step in graph:
                on_path[step] = len(path)
                path.append(step)
                stack.append((step, iter(sorted(graph[step]))))
    return None


def test_the_graph_reads_the_imports_it_should() -> None:
    graph = import_graph()
    assert {f"celeriac.{name}" for name in CORE} | {STATE} <= set(graph)
    assert "celeriac.task" in graph["celeriac.app"]  # a top-level import
    assert "celeriac.app" not in graph["celeriac.task"]  # only under TYPE_CHECKING there


def test_celeriac_modules_import_without_a_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_find_cycle_names_the_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def _imports_anywhere(path: Path) -> set[str]:
    """What a module imports by relative import anywhere, in functions too (not typing-only)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.update({node.module} if node.module else {alias.name for alias in node.names})
        for child in ast.iter_child_nodes(node):
            if not (isinstance(child, ast.If) and _is_type_checking(child.test)):
                visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def test_state_is_a_leaf_and_no_core_module_reaches_up_into_app() -> None:
    graph = import_graph()
    assert {m for m in graph[STATE] if m.startswith("celeriac")} == set()
    modules = module_files()
    reaching_up = sorted(name for name in CORE if name != "app"
                         and "app" in _imports_anywhere(modules[f"celeriac.{name}"]))
    assert reaching_up == [], f"{reaching_up} import celeriac.app: read the current app from celeriac._state"


def test_import_celeriac_loads_no_cli_django_or_redis() -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import celeriac"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    # Lines read "import time: <self us> | <cumulative us> | <indented module name>".
    imported = {line.rpartition("|")[2].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    assert "celeriac.app" in imported
    unwanted = sorted(m for m in imported if m.split(".")[0] in ("click", "django", "redis"))
    assert unwanted == [], f"import celeriac loaded {unwanted}"

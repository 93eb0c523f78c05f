"""The package's own import graph: no cycles (lazy imports inside functions count; imports
under ``if TYPE_CHECKING:`` do not), and backends import no display code."""

from __future__ import annotations

import ast
from pathlib import Path

import genmagic

PACKAGE = Path(genmagic.__file__).parent
# What a backend may import from the package: plain data, options, errors, the registry and PNG
# metadata. Nothing that shows things (display, sinks, magics) and nothing that reaches it.
BACKEND_MAY_IMPORT = {"genmagic.errors", "genmagic.options", "genmagic.request", "genmagic.results",
                      "genmagic.registry", "genmagic.pngmeta"}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The package modules ``module`` imports, at any depth except ``if TYPE_CHECKING:`` bodies."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{alias.name}" for alias in node.names]
            if not all(name in known for name in names):  # `from . import display` imports only display
                found.add(target)
            found.update(names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    resolved = set()
    for name in found:
        while name and name not in known:  # genmagic.options.TextOptions -> genmagic.options
            name = name.rpartition(".")[0]
        if name and name != module:
            resolved.add(name)
    return resolved


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    files = {_module_name(p, root): p for p in root.rglob("*.py")}
    known = set(files)
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports = _imports(tree, name, path.name == "__init__.py", known)
        # Importing genmagic.x.y runs genmagic.x's __init__ first: only a real edge when it is named.
        graph[name] = {m for m in imports if m != "genmagic" or name == "genmagic"}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "genmagic.backends.diffusers_image" in graph and graph["genmagic.magics"]  # it found modules and edges
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_backends_import_no_display_code() -> None:
    graph = import_graph()
    for module, imports in graph.items():
        if module.startswith("genmagic.backends"):
            others = {m for m in imports if m.startswith("genmagic") and not m.startswith("genmagic.backends")}
            assert others <= BACKEND_MAY_IMPORT, (module, sorted(others - BACKEND_MAY_IMPORT))


def test_the_checker_sees_lazy_imports_and_skips_type_checking(tmp_path: Path) -> None:
    pkg = tmp_path / "genmagic"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import x\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import f\nx = 1\n")
    assert find_cycle(import_graph(pkg)) is None
    (pkg / "b.py").write_text("from . import a\nx = 1\n")
    assert find_cycle(import_graph(pkg)) == ["genmagic.a", "genmagic.b", "genmagic.a"]

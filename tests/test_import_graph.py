"""fl_gitops's own imports, read from its source: no cycle, and arrows that run one way.

Every module under ``fl_gitops/`` is parsed with ``ast``. An import at module level (at the
top, or in a class body, an ``if`` or a ``try`` there) runs when the module is imported:
those are what make a cycle. An import inside a function runs only when it is called; those
are kept apart, marked ``function``, and held to the arrows between packages as well.
Imports under ``if TYPE_CHECKING:`` never run and are left out. ``from package import name``
imports ``package`` (its namespace is read, so a submodule that its ``__init__`` imports must
not do this), and the submodule ``package.name`` too when there is one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import fl_gitops

ROOT = Path(fl_gitops.__file__).resolve().parent


@dataclass(frozen=True)
class Import:
    """One import statement's edge: ``source`` imports ``target`` (both module names)."""

    source: str
    target: str
    line: int
    level: str  # "module" (runs on import) or "function" (runs when called)


def _module_files() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _module_files()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(
    nodes: Iterable[ast.AST], level: str
) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, level
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _statements(node.orelse, level)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _statements(ast.iter_child_nodes(node), "function")
        else:
            yield from _statements(ast.iter_child_nodes(node), level)


def _top(name: str) -> str:
    return name.split(".")[0]


def _targets(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    """The modules of fl_gitops (or other top-level packages) one statement imports."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    if _top(base) != "fl_gitops":
        return [base]
    targets = [] if base == module else [base]  # the statement reads the package's namespace
    targets += [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
    return targets


def _all_imports() -> list[Import]:
    found = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, level in _statements(tree.body, "module"):
            for target in _targets(node, module):
                found.append(Import(module, target, node.lineno, level))
    return found


IMPORTS = _all_imports()
OWN = [i for i in IMPORTS if _top(i.target) == "fl_gitops"]


def _graph(imports: Iterable[Import]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in imports:
        if i.target in graph:  # an unknown one fails its own test
            graph[i.source].add(i.target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``a -> b -> a``) per strongly connected part of the graph (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    parts: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1 or v in graph[v]:
                parts.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            connect(v)

    cycles = []
    for part in parts:
        members, start = set(part), part[0]
        path, seen = [start], {start}
        while True:  # walk inside the part until the path closes on itself
            nxt = min(w for w in graph[path[-1]] if w in members)
            if nxt in seen:
                cycles.append([*path[path.index(nxt) :], nxt])
                break
            path.append(nxt)
            seen.add(nxt)
    return cycles


def _package(module: str) -> str:
    """``fl_gitops.X`` for any module inside it, ``fl_gitops`` for the root module itself."""
    return ".".join(module.split(".")[:2])


def test_every_import_of_fl_gitops_names_one_of_its_modules():
    unknown = [f"{i.source}:{i.line}: {i.target}" for i in OWN if i.target not in MODULES]
    assert unknown == []


def test_no_module_level_import_cycle():
    cycles = _cycles(_graph(i for i in OWN if i.level == "module"))
    assert [" -> ".join(c) for c in cycles] == []


def test_no_import_cycle_even_through_imports_inside_functions():
    cycles = _cycles(_graph(OWN))
    assert [" -> ".join(c) for c in cycles] == []


# What each package of the model side may import, besides itself (and the leaf modules
# errors and _cpus, which import nothing of the project): the arrows run
# tensors <- store <- aggregate, and tensors <- models <- client (which also uses the store);
# reports (what a cluster reports through the hub) sits on tensors, under aggregate and client;
# secagg (the protocol) sits on store and tensors, under client (and the hub's reconcile).
ALLOWED = {
    "fl_gitops.tensors": {"fl_gitops._cpus", "fl_gitops.errors"},
    "fl_gitops.store": {"fl_gitops", "fl_gitops.errors", "fl_gitops.tensors"},
    "fl_gitops.aggregate": {
        "fl_gitops",
        "fl_gitops._lazy",
        "fl_gitops.errors",
        "fl_gitops.tensors",
        "fl_gitops.store",
        "fl_gitops.reports",
    },
    "fl_gitops.models": {"fl_gitops.errors", "fl_gitops.plugins", "fl_gitops.tensors"},
    "fl_gitops.client": {
        "fl_gitops.contracts",
        "fl_gitops.errors",
        "fl_gitops.models",
        "fl_gitops.plugins",
        "fl_gitops.reports",
        "fl_gitops.secagg",
        "fl_gitops.store",
        "fl_gitops.tensors",
    },
    "fl_gitops.plugins": {"fl_gitops.errors"},
    # secure aggregation's protocol, under the client and the hub: crypto and numpy, and
    # the store's safe reads of its messages.
    "fl_gitops.secagg": {"fl_gitops.errors", "fl_gitops.store", "fl_gitops.tensors"},
    "fl_gitops.reports": {"fl_gitops.errors", "fl_gitops.tensors"},
}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_the_packages_below_it(package):
    wrong = sorted(
        f"{i.source}:{i.line}: {i.target} ({i.level})"
        for i in OWN
        if _package(i.source) == package
        and _package(i.target) != package
        and _package(i.target) not in ALLOWED[package]
    )
    assert wrong == []


def test_the_numpy_side_of_models_never_imports_its_torch_side():
    wrong = sorted(
        f"{i.source}:{i.line}: {i.target} ({i.level})"
        for i in OWN
        if _package(i.source) == "fl_gitops.models"
        and i.source != "fl_gitops.models.torch"
        and i.target == "fl_gitops.models.torch"
    )
    assert wrong == []


def test_only_the_client_and_models_torch_import_torch_at_module_level():
    importers = sorted(
        {i.source for i in IMPORTS if i.level == "module" and _top(i.target) == "torch"}
    )
    assert [
        m for m in importers if m != "fl_gitops.models.torch" and _package(m) != "fl_gitops.client"
    ] == []


def test_local_hub_and_the_simulation_do_not_import_the_kubernetes_client():
    code = (
        "import sys; from fl_gitops.hub import LocalHub; import fl_gitops.simulate; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"

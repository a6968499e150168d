"""Everything `fl_gitops.__all__` names can be imported and used: what a public name takes
or returns is public too, lazy names have their types, and the CLI stays light."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

import fl_gitops
from fl_gitops import errors


def test_every_public_name_resolves():
    missing = [name for name in fl_gitops.__all__ if getattr(fl_gitops, name, None) is None]
    assert missing == []


def test_rendering_commands_do_not_import_torch_or_the_kubernetes_client():
    code = (
        "import sys; from fl_gitops.cli import main; "
        "main(['schema', '--compact']); "
        "print(sorted(m for m in ('torch', 'kubernetes', 'git') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


# --- the API is a whole: what a public name needs is public too ---------------------------

INIT = Path(fl_gitops.__file__)
# Values the library builds and hands back, never built by a caller: their constructors'
# field types are reached as attributes (and are public in their own packages).
BUILT_BY_THE_LIBRARY = {"Blueprint", "ConfigRepo", "PlacementResult", "RenderedTree", "RoundConfig"}


def _type_checking_imports() -> dict[str, str]:
    tree = ast.parse(INIT.read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    )
    return {
        alias.name: str(node.module)
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


def test_every_lazy_name_has_its_type_through_type_checking():
    assert _type_checking_imports() == fl_gitops._LAZY


def test_all_is_the_eager_errors_the_version_and_the_lazy_names():
    assert len(fl_gitops.__all__) == len(set(fl_gitops.__all__))
    assert set(fl_gitops.__all__) == set(errors.__all__) | {"__version__"} | set(fl_gitops._LAZY)


def test_a_lazy_name_is_the_object_its_module_defines():
    for name, module in fl_gitops._LAZY.items():
        assert getattr(fl_gitops, name) is getattr(importlib.import_module(module), name), name


def _types_in(hint: object, out: set[type]) -> None:
    if isinstance(hint, (list, tuple)):
        for item in hint:
            _types_in(item, out)
        return
    if isinstance(hint, type):
        out.add(hint)
    for arg in typing.get_args(hint):
        _types_in(arg, out)


def test_what_a_public_callable_takes_or_returns_is_public():
    # render_experiment's RoundState and RenderedTree, aggregate_round's Limits and
    # AggregateResult, run_simulation's SimulationOptions and SimulationReport, and so on.
    missing = set()
    for name in fl_gitops.__all__:
        obj = getattr(fl_gitops, name)
        if inspect.isfunction(obj):
            targets = [obj]
        elif inspect.isclass(obj) and not issubclass(obj, BaseException):
            targets = [
                getattr(member, "__func__", member)
                for key, member in vars(obj).items()
                if (inspect.isfunction(member) or isinstance(member, (classmethod, staticmethod)))
                and (
                    not key.startswith("_")
                    or (key == "__init__" and name not in BUILT_BY_THE_LIBRARY)
                )
            ]
        else:
            continue
        for target in targets:
            found: set[type] = set()
            for hint in typing.get_type_hints(target).values():
                _types_in(hint, found)
            missing |= {
                f"{name}.{target.__name__}: {cls.__module__}.{cls.__name__}"
                for cls in found
                if cls.__module__.startswith("fl_gitops") and cls.__name__ not in fl_gitops.__all__
            }
    assert sorted(missing) == []


def test_the_package_ships_its_type_information():
    assert (INIT.parent / "py.typed").is_file()
    pyproject = tomllib.loads((INIT.parents[1] / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["fl_gitops"]

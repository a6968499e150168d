"""One error root: every exception class fl-gitops defines derives from FlGitopsError, and
the tree drawn in ``fl_gitops/errors.py`` names each one under its real parent."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import fl_gitops
import fl_gitops.errors
from fl_gitops.errors import FlGitopsError

PACKAGE = Path(fl_gitops.__file__).parent
# An internal signal between a combiner and the engine, which reports it as
# NotEnoughUpdates; it never leaves aggregate/, whose owner moves it into the tree.
INTERNAL = {"fl_gitops.aggregate.strategies.base.TooFewUpdates"}


def _exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined at module level anywhere in the package."""
    found: dict[str, type[BaseException]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        names = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
        if not names:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module_name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        module = importlib.import_module(module_name)
        for name in names:
            cls = getattr(module, name)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                found[f"{module_name}.{name}"] = cls
    return found


CLASSES = _exception_classes()


def _tree() -> list[tuple[int, str]]:
    """(depth, name) for each line of the tree in the errors module's docstring."""
    doc = fl_gitops.errors.__doc__ or ""
    rows = []
    for line in doc.splitlines():
        if line.strip() == "FlGitopsError":
            rows.append((0, "FlGitopsError"))
            continue
        match = re.match(r"^    ((?:│   |    )*)[├└]── (\w+)", line)
        if match:
            rows.append((len(match.group(1)) // 4 + 1, match.group(2)))
    return rows


def test_every_exception_class_derives_from_the_one_root():
    outside = sorted(
        name
        for name, cls in CLASSES.items()
        if not issubclass(cls, FlGitopsError) and name not in INTERNAL
    )
    assert outside == []
    # Sanity: the walk sees the classes outside errors.py too.
    assert "fl_gitops.tensors._safetensors.HeaderError" in CLASSES
    assert "fl_gitops.aggregate.checks.DigestMismatch" in CLASSES


def test_errors_that_were_value_errors_still_are():
    from fl_gitops.hub._agent import JsonPathError
    from fl_gitops.tensors import HeaderError, ReadFailed

    assert all(issubclass(c, ValueError) for c in (HeaderError, ReadFailed, JsonPathError))


def test_the_drawn_tree_names_every_public_error():
    drawn = {name for _, name in _tree()}
    public = {
        cls.__name__
        for name, cls in CLASSES.items()
        if not cls.__name__.startswith("_") and name not in INTERNAL
    }
    assert sorted(public - drawn) == []
    assert sorted(drawn - public) == []


def test_each_error_is_drawn_under_its_parent():
    by_name = {cls.__name__: cls for cls in CLASSES.values()}
    parents: list[str] = []
    wrong = []
    for depth, name in _tree():
        del parents[depth:]
        if parents and not issubclass(by_name[name], by_name[parents[-1]]):
            wrong.append(f"{name} under {parents[-1]}")
        parents.append(name)
    assert wrong == []

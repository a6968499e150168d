"""How user code is named and loaded: ``package.module:function`` entrypoints.

A blueprint may name a user's own model (``model.entrypoint``) or data
(``data.entrypoint``) instead of a built-in (docs/plugins.md); the torch side of the models
and the client's data loading resolve them here, the same way.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from fl_gitops.errors import InputError

__all__ = ["resolve_entrypoint"]


def resolve_entrypoint(spec: str, *, source: str, path: str) -> Callable[..., Any]:
    """Import ``package.module:function`` and return the function.

    Raises:
        InputError: the module cannot be imported or has no such callable.
    """
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"{source}: {path}: cannot import {module_name!r}: {exc}") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise InputError(f"{source}: {path}: {module_name!r} has no callable {attr!r}")
    return fn  # type: ignore[no-any-return]

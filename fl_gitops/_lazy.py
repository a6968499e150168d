"""Names a package exports but loads on first use (PEP 562), written once for all of them.

The package, the hub and the simulation export names whose modules are heavy (the
Kubernetes client, GitPython, the aggregation engine): importing the package must not pay
for them. Each package keeps a table of name -> defining module and installs the
``__getattr__`` this module makes; the loaded value is cached in the package's namespace.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(
    package: str, table: Mapping[str, str], namespace: MutableMapping[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``table[name]`` on first use.

    Raises (from the returned function):
        AttributeError: ``name`` is not in the table, as for any missing attribute.
    """

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__

"""One validation finding, located well enough to fix it without a debugger.

Validation collects every problem rather than stopping at the first, so the result is a
list of values, not an exception. A problem names where the object came from (file and
document index), which object it is (kind and name), the field inside it (a dotted path
with ``[i]`` for list items, as ``kubectl explain`` spells fields) and what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Problem", "format_path"]

_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")


def format_path(parts: Iterable[str | int]) -> str:
    """``["spec", "containers", 0, "image"]`` → ``spec.containers[0].image``.

    A key that is not a plain identifier (a label key, ``round.json``) is written in
    brackets and quotes: ``metadata.labels["fl-gitops.io/round"]``.
    """
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            escaped = part.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            out += f'["{escaped}"]'
    return out


@dataclass(frozen=True, order=True)
class Problem:
    """What is wrong, and where: ``file#doc: Kind/name: spec.foo: message``.

    ``where`` is the file and 0-based document index (``file#2``) when the object came
    from a file, or ``file:line`` for a file that does not parse; empty when unknown.
    ``path`` is the field path inside the object, empty for the object as a whole.
    """

    where: str
    kind: str
    name: str
    path: str
    message: str

    def __str__(self) -> str:
        parts = []
        if self.where:
            parts.append(self.where)
        if self.kind or self.name:
            parts.append(f"{self.kind or '?'}/{self.name or '?'}")
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        return ": ".join(parts)

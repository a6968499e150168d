"""What of an object we sent an API server did not keep: the check behind "nothing changed".

Server-side apply answers with the whole stored object, which has more than we sent
(defaults, metadata, other managers' fields); what matters is whether every field we sent
is there with the value we sent. The same comparison tells a sync whether an object is
already as desired (Argo CD applies only what differs) and a test whether the server
pruned or rewrote a rendered field.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["differences"]


def differences(sent: Any, stored: Any, path: str = "") -> Iterator[str]:
    """Where ``stored`` lost or changed something of ``sent``; extra stored keys are fine.

    Lists compare item by item (same length), scalars by value and type (``1`` is not
    ``1.0``). Each difference is one line: ``.spec.a: pruned``, ``.spec.b[0]: sent ...``.
    """
    if isinstance(sent, Mapping):
        if not isinstance(stored, Mapping):
            yield f"{path or '.'}: sent an object, stored {type(stored).__name__}"
            return
        for key, value in sent.items():
            where = f"{path}.{key}"
            if key not in stored:
                yield f"{where}: pruned"
            else:
                yield from differences(value, stored[key], where)
    elif isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            yield f"{path}: sent {len(sent)} items, stored {stored!r:.80}"
            return
        for i, (a, b) in enumerate(zip(sent, stored, strict=True)):
            yield from differences(a, b, f"{path}[{i}]")
    elif sent != stored or type(sent) is not type(stored):
        yield f"{path}: sent {sent!r:.60}, stored {stored!r:.60}"

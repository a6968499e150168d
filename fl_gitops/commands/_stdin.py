"""``-`` for standard input where a command reads a blueprint or an inventory.

``kubectl apply -f -`` and ``helm template -f -`` read standard input for ``-``; a user
piping a generated blueprint (``envsubst < bp.yaml.in | fl-gitops validate -``) expects
the same. Standard input can be read once, so two arguments both ``-`` are refused by the
names the user typed, and the bytes read are bounded as a file's would be. Errors about
what was read from standard input name it ``<stdin>`` (``<stdin>:12:5: spec.rounds: ...``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from fl_gitops.errors import BlueprintError, InputError

__all__ = ["STDIN", "STDIN_NAME", "read_blueprint", "refuse_two_stdins"]

STDIN = "-"
STDIN_NAME = "<stdin>"


def read_blueprint(name: str) -> tuple[str, bytes]:
    """A blueprint argument's name as errors show it, and its bytes.

    ``-`` reads standard input (at most the blueprint size limit); anything else is a
    file, read as ``load_blueprint`` reads one.

    Raises:
        BlueprintError: unreadable, or larger than a blueprint may be.
    """
    from fl_gitops.blueprint import read_bounded
    from fl_gitops.blueprint._yaml import MAX_BYTES

    if name != STDIN:
        return name, read_bounded(name)
    try:
        data = sys.stdin.buffer.read(MAX_BYTES + 1)
    except (OSError, AttributeError, ValueError):
        raise BlueprintError("cannot read standard input", file=STDIN_NAME) from None
    if len(data) > MAX_BYTES:
        raise BlueprintError(
            f"over {MAX_BYTES} bytes; a blueprint may be at most {MAX_BYTES} bytes",
            file=STDIN_NAME,
        )
    return STDIN_NAME, data


def refuse_two_stdins(uses: Sequence[tuple[str, str | None]]) -> None:
    """Refuse more than one argument reading standard input.

    Args:
        uses: (the flag or argument as the user knows it, its value) pairs.

    Raises:
        InputError: naming the arguments that are ``-``.
    """
    named = [flag for flag, value in uses if value == STDIN]
    if len(named) > 1:
        raise InputError(
            f"{' and '.join(named)}: only one of them can be '-' (standard input is read once)"
        )

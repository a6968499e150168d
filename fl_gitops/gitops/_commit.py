"""What a round commit says: the message format, its trailers, and reading them back.

A round is a commit, and ``fl-gitops history`` rebuilds the table of rounds from the Git
log alone, so the message has a fixed shape that git itself can parse:

    fl(<exp>): round N -> N+1          subject
                                       blank line
    <body>                             optional: roster, metrics, rejected updates
                                       blank line
    FL-Experiment: <exp>               trailers, one "Key: value" per line
    FL-Round: N+1
    FL-Model: sha256:<hex>
    FL-Blueprint: sha256:<hex>

``git interpret-trailers --parse`` and ``git log --format=%(trailers)`` read the trailers
back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from fl_gitops.errors import InputError

__all__ = [
    "ROUND_TRAILER",
    "Change",
    "CommitInfo",
    "commit_message",
    "parse_trailers",
    "round_trailers",
]

#: The trailer that says which round a commit put the experiment in (history, rollback).
ROUND_TRAILER = "FL-Round"


def round_trailers(*, experiment: str, round_: int, model: str, blueprint: str) -> dict[str, str]:
    """The trailers of every round commit, in the order they are written: the one spelling
    that the reconcile pass, the rollback and ``history`` share."""
    return {
        "FL-Experiment": experiment,
        ROUND_TRAILER: str(round_),
        "FL-Model": model,
        "FL-Blueprint": blueprint,
    }


# git's trailer keys: a token of letters, digits and dashes (no spaces, no colon).
_TRAILER_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


@dataclass(frozen=True)
class Change:
    """What a derive step wants committed.

    Attributes:
        message: the subject line, e.g. ``fl(digits-fedavg): round 3 -> 4``.
        trailers: ``{"FL-Experiment": ..., "FL-Round": "4", ...}``, written in this order.
        body: free text between the subject and the trailers (also the PR description).
        committed_at: author and committer date; None means now. Passing the round's own
            time makes a re-derived commit byte-identical (the same sha).
    """

    message: str
    trailers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    committed_at: datetime | None = None


@dataclass(frozen=True)
class CommitInfo:
    """One commit from the log, as ``fl-gitops history`` needs it."""

    sha: str
    subject: str
    trailers: dict[str, str]
    committed_at: datetime
    author: str


def commit_message(change: Change) -> str:
    """Format a Change as a commit message: subject, blank line, body, trailers.

    Raises:
        InputError: an empty or multi-line subject, a trailer key git would not parse,
            or a trailer value spanning lines.
    """
    subject = change.message.strip()
    if not subject or "\n" in subject:
        raise InputError(f"commit subject: expected one non-empty line, got {change.message!r}")
    parts = [subject]
    body = change.body.strip("\n")
    if body.strip():
        parts.append(body.rstrip())
    lines = []
    for key, value in change.trailers.items():
        if not _TRAILER_KEY_RE.fullmatch(key):
            raise InputError(f"commit trailer {key!r}: expected letters, digits and dashes")
        text = str(value)
        if "\n" in text or "\r" in text:
            raise InputError(f"commit trailer {key}: expected a one-line value, got {text!r}")
        lines.append(f"{key}: {text}")
    if lines:
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def parse_trailers(text: str) -> dict[str, str]:
    """Parse ``Key: value`` lines (what ``%(trailers:only,unfold)`` prints) into a dict."""
    trailers: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and _TRAILER_KEY_RE.fullmatch(key.strip()):
            trailers[key.strip()] = value.strip()
    return trailers

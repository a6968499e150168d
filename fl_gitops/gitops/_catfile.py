"""Reading many files at one commit with a single ``git cat-file --batch``.

The simulation's agent (``BareRepo``) and ``verify`` (``HistoryReader``) both read a set of
paths at a ref; one parser of the batch output serves both, so that a path that is missing
or names a tree reads as None in each the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

from fl_gitops.gitops._names import check_repo_path

__all__ = ["batch_input", "parse_batch"]


def batch_input(ref: str, paths: Sequence[str]) -> bytes:
    """The lines ``cat-file --batch`` reads: ``<ref>:<path>`` for each checked path.

    Raises:
        InputError: a path outside the repository.
    """
    return "".join(f"{ref}:{check_repo_path(p)}\n" for p in paths).encode()


def parse_batch(data: bytes, count: int) -> list[bytes | None]:
    """The ``count`` objects of a batch output in order: a blob's bytes, else None (the
    path is missing, or names a tree or another object that is not a file)."""
    pos = 0
    blobs: list[bytes | None] = []
    for _ in range(count):
        end = data.index(b"\n", pos)
        header = data[pos:end].split()
        pos = end + 1
        if header[-1] == b"missing":
            blobs.append(None)
            continue
        size = int(header[2])
        blobs.append(data[pos : pos + size] if header[1] == b"blob" else None)
        pos += size + 1
    return blobs

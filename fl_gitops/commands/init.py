"""`fl-gitops init`: write a commented starter blueprint, as `helm create` and `git init` do.

A new user starts from a file that already validates, renders and simulates, with every
optional setting shown at its default, rather than from a copy of an example whose every
line must be understood first. An existing file is never overwritten without --force.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from fl_gitops.blueprint import DEFAULT_NAME, check_name, starter_blueprint
from fl_gitops.errors import InputError
from fl_gitops.tensors import write_atomic

__all__ = ["FILE_NAME", "add_arguments", "run"]

FILE_NAME = "blueprint.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dir",
        nargs="?",
        metavar="DIR",
        help=(
            f"a directory to write {FILE_NAME} in, created if missing, or - to print the "
            "blueprint to stdout (default: experiments/NAME under the current directory, "
            "where `render --out .` expects it)"
        ),
    )
    parser.add_argument(
        "--name",
        metavar="NAME",
        help=(
            "the experiment's name: lowercase letters, digits and '-', at most 40 "
            "characters; its store prefix and Git path derive from it (default: DIR's "
            f"folder name when DIR is given, else {DEFAULT_NAME})"
        ),
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help=f"overwrite an existing DIR/{FILE_NAME} (default: refuse, exit 2)",
    )


def run(args: argparse.Namespace) -> int:
    name = _name(args.name, args.dir)
    text = starter_blueprint(name)
    if args.dir == "-":
        sys.stdout.write(text)
        return 0
    target = Path(args.dir if args.dir is not None else Path("experiments", name)) / FILE_NAME
    _write(target, text.encode("utf-8"), force=args.force)
    shown = shlex.quote(str(target))
    print(f"wrote {target}: experiment {name}; next:", file=sys.stderr)
    for command in (
        f"fl-gitops validate {shown}",
        f"fl-gitops simulate {shown} --rounds 3 --clusters 4",
        f"fl-gitops inventory {shown} --clusters 4 --out inventory.yaml",
        f"fl-gitops render {shown} --inventory inventory.yaml --out .",
    ):
        print(f"  {command}", file=sys.stderr)
    print(
        "  (for a real hub: kubectl get managedclusters -o yaml > inventory.yaml)",
        file=sys.stderr,
    )
    return 0


def _name(given: str | None, directory: str | None) -> str:
    """The experiment's name: --name, else DIR's folder name, else the default."""
    if given is not None:
        return check_name(given)
    if directory is None or directory == "-":
        return DEFAULT_NAME
    folder = Path(directory).resolve().name
    try:
        return check_name(folder, flag="DIR's folder name")
    except InputError as exc:
        raise InputError(f"{exc}; pass --name NAME to name the experiment") from None


def _write(target: Path, data: bytes, *, force: bool) -> None:
    """Write ``target`` whole; without ``force``, only if nothing is at that path.

    Raises:
        InputError: the file exists (without ``force``), or cannot be written.
    """
    if target.parent.exists() and not target.parent.is_dir():
        raise InputError(f"{target.parent}: not a directory; expected DIR to be a directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if force:
            if target.is_dir():
                raise InputError(f"{target}: is a directory; --force replaces files only")
            write_atomic(target, data)
            return
        # O_EXCL: refused if anything is there, a dangling link too, with no window
        # between the check and the write.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise InputError(
            f"{target}: already exists; pass --force to overwrite it, or choose another DIR"
        ) from None
    except OSError as exc:
        raise InputError(f"{target}: cannot write the file: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        raise InputError(f"{target}: cannot write the file: {exc.strerror}") from None

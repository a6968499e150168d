"""How every command reports: ``-o text|json|yaml``, ``-q``/``-v``, and a console that fits
a pipe.

One contract for all commands, as kubectl and helm users expect it:

- ``-o json`` and ``-o yaml`` print one document to stdout whose keys are the command's
  documented ones (docs/cli.md lists them), in a fixed order, with nothing else on stdout:
  progress and warnings go to stderr, so ``fl-gitops status -o json | jq`` always parses.
- ``-q`` prints only what a script needs (errors still go to stderr, exit codes unchanged);
  ``-v`` (repeatable) adds detail to the text output.
- Text goes through :func:`console`: colour and live progress only on a terminal, never
  with ``NO_COLOR`` set or ``TERM=dumb``; to a pipe or a file the output is plain and never
  wrapped (a digest or a path stays on one line, whatever the terminal's width).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import IO, Any

__all__ = [
    "FORMATS",
    "add_output_arguments",
    "console",
    "dump",
    "emit",
    "is_terminal",
]

FORMATS = ("text", "json", "yaml")


def add_output_arguments(
    parser: argparse.ArgumentParser,
    *,
    formats: tuple[str, ...] = FORMATS,
    default: str = "text",
) -> None:
    """Add ``-o/--output``, ``-q/--quiet`` and ``-v/--verbose`` to a command's parser."""
    shown = ", ".join(formats)
    parser.add_argument(
        "-o",
        "--output",
        choices=formats,
        default=default,
        metavar="FORMAT",
        help=f"output format: {shown} (default: {default}); json and yaml print one "
        "document with the keys listed in docs/cli.md",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print only the result a script needs (errors still go to stderr)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more detail in the text output (repeat for more)",
    )


def dump(data: Any, fmt: str, stream: IO[str] | None = None) -> None:
    """Write ``data`` (plain dicts, lists, str, int, float, bool, None) as JSON or YAML.

    Keys keep the order the command built them in (its documented order), never sorted:
    the first keys are the ones a reader looks for.
    """
    out = sys.stdout if stream is None else stream
    if fmt == "json":
        out.write(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    elif fmt == "yaml":
        from ruamel.yaml import YAML

        yaml = YAML(typ="safe", pure=True)
        yaml.default_flow_style = False
        # The command's key order, not sorted (ruamel's safe dumper sorts by default).
        setattr(yaml.representer, "sort_base_mapping_type_on_output", False)  # noqa: B010
        yaml.width = 1 << 16  # never fold a long digest or path
        buf = io.StringIO()
        yaml.dump(data, buf)
        out.write(buf.getvalue())
    else:
        raise ValueError(f"not a document format: {fmt!r}")


def emit(
    args: argparse.Namespace,
    data: Mapping[str, Any] | list[Any],
    text: Callable[[], None],
) -> None:
    """Print a command's report: ``data`` with ``-o json|yaml``, else ``text()``.

    ``text`` is called only for the text format, so a command builds its table or its
    sentences once and its document once, from the same values.
    """
    fmt = getattr(args, "output", "text")
    if fmt in ("json", "yaml"):
        dump(data, fmt)
    else:
        text()


def is_terminal(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (default stdout) is a terminal a human reads."""
    s = sys.stdout if stream is None else stream
    try:
        return bool(s.isatty())
    except (AttributeError, ValueError):
        return False


def console(*, stderr: bool = False) -> Any:
    """A rich Console for text output that fits where it goes.

    On a terminal: colour (unless ``NO_COLOR`` is set or ``TERM`` is ``dumb``) and the
    terminal's width. To a pipe or a file: no colour, no control codes, and no wrapping
    (rich would otherwise fold at 80 columns and split a digest across two lines).

    Rich's own answer to a closed pipe is ``SystemExit(1)``, an exit code that says "found
    a problem"; raising ``BrokenPipeError`` lets ``cli.main`` end it quietly with 141.
    """
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    stream = sys.stderr if stderr else sys.stdout
    tty = is_terminal(stream)
    plain = not tty or bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb"
    if tty:
        return _Console(file=stream, no_color=plain, highlight=not plain)
    return _Console(
        file=stream,
        no_color=True,
        color_system=None,
        highlight=False,
        force_terminal=False,
        force_interactive=False,
        soft_wrap=True,
        width=1 << 16,
    )

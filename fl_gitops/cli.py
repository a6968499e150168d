# PYTHON_ARGCOMPLETE_OK  (argcomplete's global completion looks for this marker)
"""The command line: builds the objects, calls the library, maps errors to exit codes.

Exit codes live here and only here (as pre-commit's error handler does it):
0 success, 1 a negative answer (``render --check`` found a diff, too few updates),
2 bad input (every ``InputError``, and argparse's usage errors), 3 a bug, 130 Ctrl-C,
141 the reader of the output went away (``| head``: quietly, as a program killed by
SIGPIPE would end, with no traceback).
Each subcommand is a module under ``fl_gitops.commands`` with ``add_arguments(parser)``
and ``run(args) -> int``; modules import lazily so that ``fl-gitops render`` never
imports torch.

Shell completion (argcomplete, ``fl-gitops completion bash|zsh``): the shell runs this same
program with ``_ARGCOMPLETE`` set; the command on the line being completed gets its
arguments added as for a run, so its flags complete too, and nothing else is imported.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from fl_gitops import __version__
from fl_gitops.commands._interrupt import interrupt_once
from fl_gitops.errors import FlGitopsError, InputError

__all__ = ["COMMANDS", "main"]

# name -> (module under fl_gitops.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("init", "write a commented starter blueprint that validates and simulates as written"),
    "simulate": ("simulate", "run an experiment's whole loop on this machine (the main job)"),
    "validate": ("validate", "check a blueprint, or every object of a rendered tree"),
    "render": ("render", "compile a blueprint into the experiment's manifests"),
    "schema": ("schema", "print the blueprint's JSON Schema (for editors)"),
    "inventory": (
        "inventory",
        "generate a ManagedCluster fleet that a blueprint's placement selects",
    ),
    "aggregate": ("aggregate", "aggregate one round by hand from a folder of updates"),
    "client": ("client", "train one round on this cluster (what the rendered Job runs)"),
    "reconcile": ("reconcile", "the hub job: from Git, hub and store to the next round's commit"),
    "status": ("status", "where an experiment stands: round, each cluster's Job, last metrics"),
    "history": ("history", "the experiment's rounds from the Git log (--plot draws them)"),
    "rollback": ("rollback", "a new commit that puts the experiment back at round N"),
    "verify": ("verify", "audit an experiment from its history: signatures, records, the store"),
    "dev-hub": ("devhub", "run a real kube-apiserver with OCM's CRDs here (for --hub kubernetes)"),
    "completion": ("completion", "print the bash or zsh script that completes fl-gitops's words"),
}

EXIT_OK = 0
EXIT_INPUT = 2
EXIT_BUG = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `cmd | head`


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fl-gitops",
        description="Federated learning across an OCM fleet, the GitOps way.",
    )
    parser.add_argument("--version", action="version", version=f"fl-gitops {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_module=module_name)
        # Arguments are added lazily below, only for the command being run, so that the
        # parser never imports a heavy command module it does not need.
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script exits with it)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions: answer and exit
        _complete(parser)
    if not args_list:
        parser.print_help(sys.stderr)
        return EXIT_INPUT
    try:
        # The first Ctrl-C raises KeyboardInterrupt (exit 130 below), later ones are
        # ignored to the end of the process (commands/_interrupt.py says why).
        with interrupt_once():
            code = _dispatch(parser, args_list)
        sys.stdout.flush()  # a closed pipe is found here, not at interpreter exit
        return code
    except SystemExit:  # argparse's --help and usage errors: their output flushed quietly
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
        raise
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except InputError as exc:
        _print_error(exc)
        return EXIT_INPUT
    except FlGitopsError as exc:
        _print_error(exc)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # a bug: show everything
        traceback.print_exc()
        print("fl-gitops: internal error (please report it)", file=sys.stderr)
        return EXIT_BUG


def _dispatch(parser: argparse.ArgumentParser, args_list: list[str]) -> int:
    """Import the one command named, add its arguments, parse them all and run it."""
    # First pass: find the command without failing on its own arguments.
    known, _ = parser.parse_known_args(args_list[:1])
    module = _add_command_arguments(parser, known.command)
    args = parser.parse_args(args_list)
    return int(module.run(args))


def _add_command_arguments(parser: argparse.ArgumentParser, command: str) -> Any:
    """Import the module of ``command`` and add its arguments to its subparser."""
    module = importlib.import_module(f"fl_gitops.commands.{COMMANDS[command][0]}")
    sub_action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    module.add_arguments(sub_action.choices[command])
    return module


def _complete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell's completion request (argcomplete's protocol) and exit.

    Only the command already typed on the line (``COMP_LINE`` up to ``COMP_POINT``) gets
    its arguments, as a run would: ``fl-gitops render --ch<TAB>`` sees ``--check``, and
    completing never imports another command's module (nor torch: no command module
    imports it at module level).
    """
    import argcomplete
    from argcomplete.lexers import split_line

    line = os.environ.get("COMP_LINE", "")
    try:
        point = int(os.environ.get("COMP_POINT", len(line)))
        skip = max(int(os.environ.get("_ARGCOMPLETE", "1")), 1)  # 1: `fl-gitops ...`
    except ValueError:
        point, skip = len(line), 1
    words = split_line(line, point)[3][skip:]  # the words before the cursor's
    command = next((w for w in words if not w.startswith("-")), None)
    if command in COMMANDS:
        # a command whose module fails to load still leaves the others' names to complete
        with contextlib.suppress(Exception):
            _add_command_arguments(parser, command)
    argcomplete.autocomplete(parser)  # exits when _ARGCOMPLETE is set


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the final flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (a caller's capture): nothing to flush
        pass


def _print_error(exc: FlGitopsError) -> None:
    print(f"error: {exc}", file=sys.stderr)
    for more in getattr(exc, "more", ()):
        print(f"error: {more}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

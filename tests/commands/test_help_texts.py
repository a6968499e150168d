"""Every flag and argument of every command has a help text, and one that has a default
says it (the real one, not a stale number): `fl-gitops <command> --help` is enough to use a
command.

Each command's parser is built the way the CLI builds it (its module's lazy
``add_arguments`` on its subparser), so a flag added tomorrow is checked tomorrow.
"""

from __future__ import annotations

import argparse

import pytest

from fl_gitops.cli import COMMANDS, _add_command_arguments, _parser

# Flags whose value is their presence or a count: their default (off, 0) goes without saying.
_FLAGS = (
    argparse._StoreTrueAction,
    argparse._StoreFalseAction,
    argparse._StoreConstAction,
    argparse._CountAction,
    argparse.BooleanOptionalAction,
)


def _command_parser(command: str) -> argparse.ArgumentParser:
    parser = _parser()
    _add_command_arguments(parser, command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def _name(action: argparse.Action) -> str:
    return "/".join(action.option_strings) or str(action.metavar or action.dest)


def _shown_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help as `--help` prints it (``%(default)s`` expanded)."""
    return parser._get_formatter()._expand_help(action) if action.help else ""


def _problems(parser: argparse.ArgumentParser) -> list[str]:
    """What a reader of ``--help`` would miss: a flag with no help, a default not said."""
    problems = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            continue
        if action.help == argparse.SUPPRESS:
            continue  # hidden on purpose: not part of what a user reads
        shown = _shown_help(parser, action).strip()
        if not shown:
            problems.append(f"{_name(action)}: no help text")
            continue
        has_default = action.default not in (None, False, argparse.SUPPRESS, [], ())
        if not has_default or isinstance(action, _FLAGS):
            continue
        if "default" not in shown.lower():
            problems.append(
                f"{_name(action)}: its default ({action.default!r}) is not said in its help"
            )
        elif not any(text in shown for text in _spellings(action.default)):
            problems.append(
                f"{_name(action)}: its help says another default than the real one "
                f"({action.default!r})"
            )
    return problems


def _spellings(default: object) -> list[str]:
    """How a help may write ``default``: as it is, and 600.0 or "10.0" as 600 or 10."""
    text = str(default)
    try:
        number = float(text)
    except ValueError:
        return [text]
    return [text, str(int(number))] if number.is_integer() else [text]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_flag_and_argument_has_a_help_that_says_its_default(command: str) -> None:
    assert _problems(_command_parser(command)) == []


def test_the_check_finds_a_missing_help_and_a_default_not_said() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5, help="how many rounds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="workers (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="only print")
    parser.add_argument("-v", action="count", default=0, help="more detail")
    parser.add_argument("--wait", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--clusters", type=int, default=10, help="fleet size (default: 5)")
    assert _problems(parser) == [
        "--rounds: its default (5) is not said in its help",
        "--seed: no help text",
        "--clusters: its help says another default than the real one (10)",
    ]

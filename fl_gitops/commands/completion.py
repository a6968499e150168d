"""`fl-gitops completion bash|zsh`: the shell script that completes fl-gitops's words.

``eval "$(fl-gitops completion bash)"`` in ``~/.bashrc`` (or ``zsh`` in ``~/.zshrc``, after
``compinit``) gives the same completion as argcomplete's own
``eval "$(register-python-argcomplete fl-gitops)"``: the shell runs fl-gitops with
``_ARGCOMPLETE`` set and ``cli.main`` answers (commands, flags, choices, paths). The script
comes from argcomplete, a well-kept library, so that it follows the shells' changes.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["SHELLS", "add_arguments", "run"]

SHELLS = ("bash", "zsh")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the shell to write the script for."""
    parser.add_argument(
        "shell",
        choices=SHELLS,
        metavar="SHELL",
        help="the shell the script is for: bash or zsh (no default: name it); eval its "
        'output, e.g. eval "$(fl-gitops completion bash)"',
    )


def run(args: argparse.Namespace) -> int:
    """Print the completion script (exit 0)."""
    from argcomplete.shell_integration import shellcode

    sys.stdout.write(shellcode(["fl-gitops"], shell=args.shell))
    return 0

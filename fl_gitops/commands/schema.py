"""`fl-gitops schema`: print the blueprint's JSON Schema, for editors and CI linters."""

from __future__ import annotations

import argparse
import json
import sys

from fl_gitops.blueprint import blueprint_schema

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--compact",
        action="store_true",
        help="print the JSON on one line (default: indented by 2 spaces)",
    )


def run(args: argparse.Namespace) -> int:
    schema = blueprint_schema()
    text = (
        json.dumps(schema, separators=(",", ":")) if args.compact else json.dumps(schema, indent=2)
    )
    sys.stdout.write(text + "\n")
    return 0

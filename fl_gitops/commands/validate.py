"""`fl-gitops validate`: check blueprints, or every object of a rendered tree.

For a config repo's CI: a pull request that breaks a blueprint or a rendered manifest
fails here, with the file and line, before Argo CD ever sees it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fl_gitops.blueprint import load_blueprint
from fl_gitops.errors import BlueprintError, InputError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("blueprints", nargs="*", metavar="BLUEPRINT", help="blueprint files")
    parser.add_argument(
        "--rendered",
        metavar="DIR",
        action="append",
        default=[],
        help="validate every object under DIR strictly (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    if not args.blueprints and not args.rendered:
        raise InputError("validate: give BLUEPRINT files or --rendered DIR")
    failed = False
    for name in args.blueprints:
        try:
            blueprint = load_blueprint(name)
        except BlueprintError as exc:
            failed = True
            for error in [exc, *getattr(exc, "more", [])]:
                print(f"error: {error}", file=sys.stderr)
            continue
        print(f"ok: {name}: Experiment {blueprint.namespace}/{blueprint.name}")
    for directory in args.rendered:
        failed |= _validate_rendered(Path(directory))
    return 2 if failed else 0


def _validate_rendered(root: Path) -> bool:
    from fl_gitops.validate import validate_tree

    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    problems = [str(p) for p in validate_tree(root)]
    for blueprint_file in sorted(root.rglob("blueprint.yaml")):
        try:
            load_blueprint(blueprint_file)
        except BlueprintError as exc:
            problems += [str(e) for e in [exc, *getattr(exc, "more", [])]]
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        count = sum(1 for p in root.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
        print(f"ok: {root}: {count} files, every object valid")
    return bool(problems)

"""`fl-gitops validate`: check blueprints, or every object of a rendered tree.

For a config repo's CI: a pull request that breaks a blueprint or a rendered manifest
fails here, with the file and line, before Argo CD ever sees it. ``-`` reads a blueprint
from standard input; ``-o json|yaml`` prints one document (keys in docs/cli.md) for a
script, while the errors still go to stderr, one a line, as an editor reads them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fl_gitops.blueprint import load_blueprint
from fl_gitops.commands._output import add_output_arguments, console, emit
from fl_gitops.commands._stdin import STDIN
from fl_gitops.commands._stdin import read_blueprint as read_blueprint_arg
from fl_gitops.errors import BlueprintError, InputError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "blueprints",
        nargs="*",
        metavar="BLUEPRINT",
        help="blueprint files (YAML paths); '-' reads one from standard input",
    )
    parser.add_argument(
        "--rendered",
        metavar="DIR",
        action="append",
        default=[],
        help="a rendered tree (a directory path): every YAML/JSON object under it is "
        "validated strictly (repeatable; default: none)",
    )
    add_output_arguments(parser)


def _error_record(error: BlueprintError) -> dict[str, Any]:
    return {
        "file": error.file,
        "line": error.line or None,
        "column": error.column or None,
        "document": None,
        "object": None,
        "field": error.field or None,
        "message": error.message,
    }


def _problem_record(problem: Any) -> dict[str, Any]:
    """A rendered object's problem (``validate.Problem``) in the same shape as a blueprint's."""
    where: str = problem.where
    file, document, line = where, None, None
    if "#" in where:
        file, _, index = where.rpartition("#")
        document = int(index) if index.isdigit() else None
    elif ":" in where:
        head, _, tail = where.rpartition(":")
        if tail.isdigit():
            file, line = head, int(tail)
    obj = f"{problem.kind or '?'}/{problem.name or '?'}" if problem.kind or problem.name else None
    return {
        "file": file or None,
        "line": line,
        "column": None,
        "document": document,
        "object": obj,
        "field": problem.path or None,
        "message": problem.message,
    }


def run(args: argparse.Namespace) -> int:
    if not args.blueprints and not args.rendered:
        raise InputError(
            "validate: give BLUEPRINT files ('-' for standard input) or --rendered DIR"
        )
    if args.blueprints.count(STDIN) > 1:
        raise InputError("BLUEPRINT: '-' given more than once (standard input is read once)")
    out = console()
    blueprints: list[dict[str, Any]] = []
    for name in args.blueprints:
        blueprints.append(_validate_blueprint(name, args))
    rendered = [_validate_rendered(Path(d)) for d in args.rendered]
    valid = all(b["valid"] for b in blueprints) and all(r["valid"] for r in rendered)
    document = {"valid": valid, "blueprints": blueprints, "rendered": rendered}

    def text() -> None:
        if args.quiet:
            return
        for b in blueprints:
            if b["valid"]:
                exp = b["experiment"]
                out.print(
                    f"ok: {b['file']}: Experiment {exp['namespace']}/{exp['name']}",
                    markup=False,
                    highlight=False,
                )
                if args.verbose:
                    out.print(
                        f"  {exp['rounds']} rounds, strategy {exp['strategy']}, path {exp['path']}",
                        markup=False,
                        highlight=False,
                    )
        for r in rendered:
            if r["valid"]:
                out.print(
                    f"ok: {r['dir']}: {r['files']} files, every object valid",
                    markup=False,
                    highlight=False,
                )

    emit(args, document, text)
    return 0 if valid else 2


def _validate_blueprint(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One blueprint's result; its errors printed to stderr as ``file:line:col: ...``."""
    shown = "<stdin>" if name == STDIN else name
    try:
        shown, data = read_blueprint_arg(name)
        blueprint = load_blueprint(shown, text=data)
    except BlueprintError as exc:
        errors = [exc, *getattr(exc, "more", [])]
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        return {
            "file": shown,
            "valid": False,
            "experiment": None,
            "errors": [_error_record(e) for e in errors],
        }
    return {
        "file": shown,
        "valid": True,
        "experiment": {
            "name": blueprint.name,
            "namespace": blueprint.namespace,
            "rounds": blueprint.rounds,
            "strategy": blueprint.strategy.name,
            "path": blueprint.gitops.path,
        },
        "errors": [],
    }


def _validate_rendered(root: Path) -> dict[str, Any]:
    """Every object under ``root``; problems printed to stderr, one a line."""
    from fl_gitops.validate import validate_tree

    if not root.is_dir():
        raise InputError(f"--rendered: {root} is not a directory")
    found = validate_tree(root)
    problems = [_problem_record(p) for p in found]
    lines = [str(p) for p in found]
    for blueprint_file in sorted(root.rglob("blueprint.yaml")):
        try:
            load_blueprint(blueprint_file)
        except BlueprintError as exc:
            errors = [exc, *getattr(exc, "more", [])]
            problems += [_error_record(e) for e in errors]
            lines += [str(e) for e in errors]
    for line in lines:
        print(f"error: {line}", file=sys.stderr)
    count = sum(1 for p in root.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
    return {"dir": str(root), "valid": not problems, "files": count, "errors": problems}

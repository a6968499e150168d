"""`fl-gitops inventory`: a generated ManagedCluster fleet that a blueprint's placement selects.

For trying render and the simulation without a hub, and for benchmarks: the output has the
shape `kubectl get managedclusters -o yaml` prints, so it goes wherever a real one would.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from fl_gitops.blueprint import load_blueprint
from fl_gitops.commands._output import add_output_arguments
from fl_gitops.errors import InputError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "blueprint",
        metavar="BLUEPRINT",
        help="a blueprint YAML file whose placement the fleet is made to satisfy",
    )
    parser.add_argument(
        "--clusters",
        type=int,
        default=100,
        metavar="N",
        help="how many ManagedClusters to generate, 1 to 1000000 (default: %(default)s)",
    )
    parser.add_argument(
        "--mix",
        action="store_true",
        help="make only part of the fleet match (wrong labels, taints, other cluster sets); "
        "without it, every cluster matches",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="INT",
        help="the random seed: the same seed gives the same fleet (default: %(default)s)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="the same as -o json (kept for scripts that use it)",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="a file to write the fleet to (default: standard output)",
    )
    # The fleet is the document: yaml (as `kubectl get managedclusters -o yaml`) or json.
    add_output_arguments(parser, formats=("yaml", "json"), default="yaml")
    parser.set_defaults(output=None)  # None: not typed, so that `--json -o yaml` is refused


def _check_out(text: str) -> None:
    """Refuse an ``--out`` that cannot be written before generating the fleet."""
    out = Path(text)
    if out.is_dir():
        raise InputError(f"--out {text}: is a directory; expected a file to write")
    if not out.parent.is_dir():
        raise InputError(f"--out {text}: no such directory {out.parent}")


def run(args: argparse.Namespace) -> int:
    from fl_gitops.placement import generate_inventory, inventory_list

    if not 1 <= args.clusters <= 1_000_000:
        raise InputError(f"--clusters: expected 1 to 1000000, got {args.clusters}")
    if args.json and args.output == "yaml":
        raise InputError("--json conflicts with -o yaml: give one of them")
    fmt = args.output or ("json" if args.json else "yaml")
    if args.out:
        _check_out(args.out)
    blueprint = load_blueprint(args.blueprint)
    clusters = generate_inventory(
        args.clusters, spec=blueprint.placement, seed=args.seed, mix=args.mix
    )
    listing = inventory_list(clusters)
    if fmt == "json":
        text = json.dumps(listing, indent=1) + "\n"
    else:
        text = yaml.dump(listing, Dumper=yaml.CSafeDumper, sort_keys=False)
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"--out {args.out}: cannot be written: {exc.strerror}") from None
        if not args.quiet:
            print(f"wrote {args.clusters} ManagedClusters to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0

"""``fl-gitops client``: train one round on this cluster (what the rendered Job runs).

Reads the round config from ``--config`` or ``FL_ROUND_CONFIG`` (the mounted ConfigMap),
the cluster's name from the config or ``FL_CLUSTER``, and does the round through
``fl_gitops.client.run_client_file``, which then reports the update through the hub
(the round's result ConfigMap, ``FL_RESULT_CONFIGMAP``; the simulation's
``FL_RESULT_FILE``). Prints one line on success; a report that cannot be written fails.
The library is imported inside ``run`` so that ``fl-gitops client --help`` does not
import torch.
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the client's options."""
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=None,
        help="a round config JSON file, as the rendered Job mounts it (default: the file "
        "named by $FL_ROUND_CONFIG)",
    )


def run(args: argparse.Namespace) -> int:
    """Train, write the update, print a summary line; errors propagate to the CLI."""
    from fl_gitops.client import run_client_file

    record = run_client_file(args.config)
    secagg = record.get("secagg")
    if "num_examples" not in record:  # a secure round's short Job (keys, shares, reveal)
        print(f"{record['cluster']} round {record['round']}: reported to {record['reported_to']}")
        return 0
    metrics = record.get("metrics", {})
    shown = " ".join(
        f"{k}={metrics[k]:.4f}" for k in ("train_accuracy", "train_loss") if k in metrics
    )
    if secagg is not None:
        print(
            f"{record['cluster']} round {record['round']}: trained on "
            f"{record['num_examples']} examples, {shown}; masked input {record['sha256']}, "
            f"reported to {record['reported_to']}"
        )
        return 0
    print(
        f"{record['cluster']} round {record['round']}: trained on {record['num_examples']} "
        f"examples from {record['base_model']}, {shown}; update {record['sha256']}, "
        f"reported to {record['reported_to']}"
    )
    return 0

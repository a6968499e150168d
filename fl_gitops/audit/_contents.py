"""The store checked against what Git names: models by their digest, updates by the hub's.

A model is named by the sha256 of its bytes, so a model is verified by hashing what the
store holds under that name. An update is verified against the digest its cluster
reported through the hub (recorded in the round record), not against the store's own
metadata: anyone who can write to the bucket can rewrite that.
"""

from __future__ import annotations

from fl_gitops.audit._walk import Aggregation, Walk
from fl_gitops.errors import FlGitopsError
from fl_gitops.store import ModelStore
from fl_gitops.tensors import digest_file

__all__ = ["check_models", "check_updates"]


def check_models(store: ModelStore, walk: Walk) -> None:
    """Every model named in Git is in the store, and its bytes hash to its name."""
    for digest, entry in walk.models.items():
        try:
            present = store.has_model(digest)
        except FlGitopsError:
            present = False
        if not present:
            entry.problem(f"model {digest} is not in the store")
            continue
        try:
            with store.model_file(digest):
                pass  # model_file hashes the bytes and raises if they differ
        except FlGitopsError:
            entry.problem(f"the store's model {digest} does not hash to its name")


def check_updates(store: ModelStore, agg: Aggregation) -> None:
    """Each contributor's update is in the store and hashes to the digest the hub reported
    (in a secure round: its masked input, the only form the store holds it in)."""
    if agg.updates is None:
        return  # the walk reported "no hub digest recorded"
    if agg.secure is not None:
        _check_masked_inputs(store, agg)
        return
    for cluster in agg.contributors:
        reported = agg.updates.get(cluster)
        if reported is None:
            continue
        try:
            with store.update_file(agg.round, cluster) as path:
                actual = digest_file(path, reported)
        except (FlGitopsError, OSError):
            agg.entry.problem(
                f"no readable update of round {agg.round} in the store", cluster=cluster
            )
            continue
        if actual != reported:
            agg.entry.problem(
                f"the store's update hashes to {actual}, the hub reported {reported}",
                cluster=cluster,
            )


def _check_masked_inputs(store: ModelStore, agg: Aggregation) -> None:
    """Each survivor's masked input, under its name for the round's reveal record, hashes
    to the digest the round record holds."""
    from fl_gitops.audit._secure import masked_names

    names = masked_names(agg)
    if names is None:
        return  # masked_names put the reason on the entry
    from fl_gitops.secagg._errors import BadMessage
    from fl_gitops.secagg._loop import read_message
    from fl_gitops.tensors import read_header

    try:
        with store.model_file(agg.base or "") as base:
            # A masked input is 8 bytes a parameter of the model the round started from.
            limit = 8 * sum(t.size for t in read_header(base).tensors.values())
    except (FlGitopsError, OSError, ValueError):
        agg.entry.problem(f"round {agg.round}'s masked inputs not checked: no base model")
        return
    for cluster in agg.contributors:
        reported = (agg.updates or {}).get(cluster)
        if reported is None:
            continue
        name = names.get(cluster)
        if name is None:
            agg.entry.problem(
                "a contributor that is not among the reveal's survivors", cluster=cluster
            )
            continue
        try:
            read_message(store, agg.round, name, reported, limit=limit)
        except BadMessage:
            agg.entry.problem(
                f"no masked input of round {agg.round} in the store hashing to {reported}",
                cluster=cluster,
            )

"""``fl-gitops aggregate``: aggregate one round by hand, the way the reconcile job does.

To debug a round or run it again from a folder of ``<cluster>.safetensors`` +
``<cluster>.json`` pairs (copied out of the store's ``rounds/<N>/updates/``). Prints the new
model's ``sha256:<hex>`` on stdout and each rejected update with its reason on stderr.
Exit codes (set in ``cli.py``): 0 a model was written, 1 too few valid updates, 2 bad input.

Sharded by hand, the same code an Indexed Job's pods run: ``--shard I/N --out DIR`` runs
shard I of N into DIR (shared by the N shards, which run at the same time and wait for
each other's files between phases), then ``--merge DIR --out NEW.safetensors`` writes the
model, to the bytes one ``aggregate`` writes (``fl_gitops.aggregate._shards``). DIR may be a
store URI (``s3://...``): the shards' files are then written, polled and listed there.

What an Indexed Job's pod runs: ``--inputs URI --inputs-digest sha256:... --shard auto/N
--out URI``: the round from the inputs document the reconcile pass wrote into the store
(``fl_gitops.aggregate._inputs``), refused unless its bytes hash to the digest given, shard
I from ``JOB_COMPLETION_INDEX``. Too few valid updates is then written down for the pass
(exit 0), which retries or fails the round as it does for one pod.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from fl_gitops.aggregate import AggregateResult, NotEnoughUpdates, Update, aggregate_round
from fl_gitops.aggregate.checks import (
    DEFAULT_MAX_NUM_EXAMPLES,
    DEFAULT_MEDIAN_DISTANCE_MULTIPLE,
    Limits,
)
from fl_gitops.aggregate.strategies import strategy_names, validate_options
from fl_gitops.errors import FlGitopsError, InputError, StoreError, UpdateRejected
from fl_gitops.store import (
    MAX_METADATA_BYTES,
    ModelStore,
    held_path,
    open_regular,
    parse_metadata,
    read_regular,
)
from fl_gitops.tensors import HeaderError, read_header, write_atomic

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument(
        "--model",
        metavar="BASE.safetensors",
        help="the global model the round trained from (a safetensors path; required "
        "unless --merge)",
    )
    parser.add_argument(
        "--updates",
        metavar="DIR",
        help="a folder of <cluster>.safetensors + <cluster>.json pairs (required unless --merge)",
    )
    parser.add_argument(
        "--round",
        type=int,
        metavar="N",
        help="the round being aggregated, an integer >= 0 (required unless --merge)",
    )
    parser.add_argument(
        "--strategy",
        metavar="NAME",
        help=f"one of: {', '.join(strategy_names())} (required unless --merge)",
    )
    parser.add_argument(
        "--options",
        default="{}",
        metavar="JSON",
        help="the strategy's options as a JSON object (default: {})",
    )
    parser.add_argument(
        "--state",
        metavar="DIR",
        help="a store directory holding strategy state: reads "
        "state/<strategy>/round-<N-1>.safetensors, writes round-<N> (default: no state, "
        "start fresh; with --shard each shard reads it, with --merge the merge writes it)",
    )
    parser.add_argument(
        "--roster",
        metavar="A,B,...",
        help="the clusters allowed to contribute, comma-separated names (default: every one "
        "in --updates)",
    )
    parser.add_argument(
        "--min-updates",
        type=int,
        default=1,
        metavar="K",
        help="aggregate only if at least K updates are valid, a count (default 1)",
    )
    parser.add_argument(
        "--max-update-bytes",
        type=int,
        metavar="BYTES",
        help="reject larger update files, in bytes (default: the model's size + 1 MiB)",
    )
    parser.add_argument(
        "--max-l2-norm",
        type=float,
        metavar="X",
        help="reject updates farther than X from the global model, an L2 distance in the "
        "model's units (default: no absolute bound)",
    )
    parser.add_argument(
        "--median-distance-multiple",
        default=str(DEFAULT_MEDIAN_DISTANCE_MULTIPLE),
        metavar="X|off",
        help="reject updates farther from the global model than X times the round's median "
        f"distance (default {DEFAULT_MEDIAN_DISTANCE_MULTIPLE:g}; 'off' turns it off)",
    )
    parser.add_argument(
        "--max-num-examples",
        default=str(DEFAULT_MAX_NUM_EXAMPLES),
        metavar="N|off",
        help="the most examples one update may weigh; above it the update is rejected "
        f"(default {DEFAULT_MAX_NUM_EXAMPLES}; 'off' turns it off)",
    )
    parser.add_argument(
        "--cap-num-examples",
        action="store_true",
        help="weigh an update above --max-num-examples as that many, instead of rejecting it",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for the DP noise, an integer (default 0)"
    )
    parser.add_argument(
        "--record",
        metavar="FILE",
        help="also write the round record to FILE, a JSON path (default: not written)",
    )
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="run only shard I of N (0 <= I < N; auto/N: I from JOB_COMPLETION_INDEX, as an "
        "Indexed Job sets it) into the shard directory --out DIR, which the N shards share "
        "and run at the same time; then --merge DIR (default: one pod, the whole round)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="with --shard: how long to wait for the other shards' files at each phase, "
        "in seconds (default 600)",
    )
    parser.add_argument(
        "--inputs",
        metavar="URI",
        help="run a shard of the round the reconcile pass wrote down in this inputs document "
        "(a path or store URI; with --inputs-digest and --shard; the round's flags are then "
        "not used) (default: the round from --model, --updates and the flags)",
    )
    parser.add_argument(
        "--inputs-digest",
        metavar="sha256:HEX",
        help="with --inputs: the digest the document's bytes must hash to, else it is refused",
    )
    parser.add_argument(
        "--merge",
        action="append",
        metavar="DIR",
        help="merge a sharded round: the shard directory (or directories, repeated) the "
        "--shard runs wrote; --out is then the new model (default: no merge)",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="where to write the new global model (a safetensors path); with --shard, the "
        "shard directory (a local one is created if missing; or a store URI)",
    )


def _bound(text: str, flag: str, kind: type[float] | type[int]) -> Any:
    """A bound's value, or None for 'off'."""
    if text == "off":
        return None
    try:
        return kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise InputError(f"{flag}: expected {what} or 'off', got {text!r}") from None


def _options(text: str, strategy: str) -> dict[str, Any]:
    try:
        options = json.loads(text)
    except ValueError as exc:
        raise InputError(f"--options: not valid JSON: {exc}") from None
    if not isinstance(options, dict):
        raise InputError(f"--options: expected a JSON object, got {text!r}")
    return validate_options(strategy, options)


def _updates(
    directory: str, stack: contextlib.ExitStack
) -> tuple[list[Update], list[str], dict[str, str]]:
    """Read the folder: one Update per ``<cluster>.json``, read as the store reads its own
    (bounded, never through a link, never blocking); a cluster whose files cannot be read
    so is rejected with the reason. Its update file is held open until the stack closes.

    Returns:
        The updates, the clusters with no JSON yet, and the rejected clusters' reasons.
    """
    if not os.path.isdir(directory):
        raise InputError(f"--updates {directory}: not a directory")
    names = sorted(os.listdir(directory))
    updates: list[Update] = []
    incomplete = []
    rejected: dict[str, str] = {}
    for name in names:
        if name.endswith(".json"):
            cluster = name[: -len(".json")]
            try:
                fd = open_regular(directory, name, cluster)
                try:
                    meta = parse_metadata(
                        read_regular(fd, MAX_METADATA_BYTES, name, cluster), cluster
                    )
                finally:
                    os.close(fd)
                data = f"{cluster}.safetensors"
                try:
                    fd = open_regular(directory, data, cluster)
                except FileNotFoundError:
                    path = os.path.join(directory, data)  # the checks reject it as missing
                else:
                    stack.callback(os.close, fd)
                    path = held_path(fd, os.path.join(directory, data))
            except UpdateRejected as exc:
                rejected[cluster] = exc.reason
                continue
            except OSError as exc:
                raise InputError(f"--updates {directory}: cannot read: {exc.strerror}") from None
            updates.append(Update(cluster, path, meta))
        elif name.endswith(".safetensors"):
            cluster = name[: -len(".safetensors")]
            if f"{cluster}.json" not in names:
                incomplete.append(cluster)
    return updates, incomplete, rejected


def _write_atomic(path: str, data: bytes | bytearray) -> None:
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise InputError(f"--out {path}: cannot write: {exc.strerror}") from None


_ROUND_FLAGS = ("model", "updates", "round", "strategy")


def run(args: argparse.Namespace) -> int:
    """Aggregate the round (or a shard of it, or merge its shards); return 0 when done."""
    if args.inputs is not None or args.inputs_digest is not None:
        return _from_inputs(args)
    if args.merge:
        return _merge(args)
    missing = [f"--{name}" for name in _ROUND_FLAGS if getattr(args, name) is None]
    if missing:
        raise InputError(f"{', '.join(missing)}: required (or --merge DIR to merge shards)")
    shard = None
    if args.shard is not None:
        from fl_gitops.aggregate._inputs import shard_index

        shard = shard_index(args.shard, os.environ)
        _check_wait(args)
    if args.round < 0:
        raise InputError(f"--round: expected an integer >= 0, got {args.round}")
    try:
        limits = Limits(
            max_update_bytes=args.max_update_bytes,
            max_l2_norm=args.max_l2_norm,
            min_updates=args.min_updates,
            median_distance_multiple=_bound(
                args.median_distance_multiple, "--median-distance-multiple", float
            ),
            max_num_examples=_bound(args.max_num_examples, "--max-num-examples", int),
            cap_num_examples=args.cap_num_examples,
        )
    except ValueError as exc:
        field, _, problem = str(exc).partition(": ")
        raise InputError(f"--{field.replace('_', '-')}: {problem}") from None
    options = _options(args.options, args.strategy)
    if not os.path.isfile(args.model):
        raise InputError(f"--model {args.model}: no such file")
    try:
        read_header(args.model)
    except HeaderError as exc:
        raise InputError(f"--model {args.model}: not a safetensors file: {exc}") from None
    with contextlib.ExitStack() as stack:  # holds the update files open
        return _aggregate(args, options, limits, stack, shard)


def _check_wait(args: argparse.Namespace) -> None:
    if not args.wait >= 0:
        raise InputError(f"--wait: expected seconds >= 0, got {args.wait:g}")


def _from_inputs(args: argparse.Namespace) -> int:
    """One shard of the round an inputs document holds: what the shards' Job runs."""
    from fl_gitops.aggregate._inputs import opened_round, read_inputs, shard_index

    if args.inputs is None:
        raise InputError("--inputs-digest: only with --inputs URI")
    if args.inputs_digest is None:
        raise InputError(f"--inputs {args.inputs}: needs --inputs-digest sha256:<hex>")
    given = [f"--{name}" for name in _ROUND_FLAGS if getattr(args, name) is not None]
    if args.merge:
        given.append("--merge")
    if given:
        raise InputError(
            f"--inputs: {', '.join(given)} not used (the inputs document holds the round); "
            "drop them"
        )
    if args.shard is None:
        raise InputError("--inputs: needs --shard I/N (or auto/N in an Indexed Job)")
    index, of = shard_index(args.shard, os.environ)
    _check_wait(args)
    inputs = read_inputs(args.inputs, args.inputs_digest)
    with opened_round(inputs, os.environ) as (base, updates, state):
        return _run_shard(
            args, (index, of), base, updates,
            strategy=inputs.strategy, round=inputs.round, options=inputs.options,
            state=state, roster=inputs.roster, limits=inputs.limits, seed=inputs.seed,
            base_digest=inputs.base_digest, chunk_elements=inputs.chunk,
            rejected=inputs.rejected, record_shortfall=True,
        )  # fmt: skip


def _shard_dir(out: str) -> None:
    """A local shard directory made when missing (a store URI needs none)."""
    if "://" in out and not out.startswith("file://"):
        return
    local = out.removeprefix("file://")
    if os.path.exists(local) and not os.path.isdir(local):
        raise InputError(f"--out {out}: with --shard, a directory (this is a file)")
    try:
        os.makedirs(local, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot create: {exc.strerror}") from None


def _merge(args: argparse.Namespace) -> int:
    """Merge a sharded round's directories into the model, as one pod's round writes it."""
    from fl_gitops.aggregate._shards import ShardDirError, merge_shards

    given = [f"--{name}" for name in _ROUND_FLAGS if getattr(args, name) is not None]
    if args.shard is not None:
        given.append("--shard")
    if given:
        raise InputError(
            f"--merge: {', '.join(given)} not used (the shards' files hold the round); drop them"
        )
    try:
        result = merge_shards(args.merge)
    except ShardDirError as exc:
        raise InputError(f"--merge {exc}") from None
    record = result.record
    _finish(args, result, str(record["strategy"]), int(record["round"]))
    return 0


def _finish(args: argparse.Namespace, result: AggregateResult, strategy: str, round_: int) -> None:
    """Report the rejections, write the model, the state and the record, print the digest."""
    for cluster, reason in result.rejected.items():
        print(f"rejected {cluster}: {reason}", file=sys.stderr)
    _write_atomic(args.out, result.model)
    if args.state is not None and result.new_state is not None:
        ModelStore.open(args.state).put_state(strategy, round_, result.new_state)
    if args.record:
        text = json.dumps(result.record, sort_keys=True, indent=2) + "\n"
        _write_atomic(args.record, text.encode())
    print(result.digest)


def _aggregate(
    args: argparse.Namespace,
    options: dict[str, Any],
    limits: Limits,
    stack: contextlib.ExitStack,
    shard: tuple[int, int] | None,
) -> int:
    updates, incomplete, unreadable = _updates(args.updates, stack)
    for cluster in incomplete:
        print(f"skipped {cluster}: no {cluster}.json yet (incomplete update)", file=sys.stderr)
    roster = None
    if args.roster is not None:
        roster = [c.strip() for c in args.roster.split(",") if c.strip()]
    state = None
    if args.state is not None:
        store = ModelStore.open(args.state)
        try:
            state = store.get_state(args.strategy, args.round - 1) if args.round > 0 else None
        except StoreError as exc:
            raise InputError(f"--state {args.state}: {exc}") from None
    if shard is not None:
        return _shard(args, options, limits, shard, updates, roster, state, unreadable)
    try:
        result = aggregate_round(
            args.model,
            updates,
            strategy=args.strategy,
            round=args.round,
            options=options,
            state=state,
            roster=roster,
            limits=limits,
            seed=args.seed,
        )
    except StoreError as exc:
        raise InputError(f"--state {args.state}: {exc}") from None
    except NotEnoughUpdates as exc:
        raise exc.with_rejected(unreadable) from None
    if unreadable:
        merged = dict(sorted({**result.rejected, **unreadable}.items()))
        result = dataclasses.replace(
            result, rejected=merged, record={**result.record, "rejected": merged}
        )
    _finish(args, result, args.strategy, args.round)
    return 0


def _shard(
    args: argparse.Namespace,
    options: dict[str, Any],
    limits: Limits,
    shard: tuple[int, int],
    updates: list[Update],
    roster: list[str] | None,
    state: bytes | None,
    unreadable: dict[str, str],
) -> int:
    """Run one shard into the shared directory ``--out``; print its decision file's path."""
    try:
        return _run_shard(
            args, shard, args.model, updates,
            strategy=args.strategy, round=args.round, options=options, state=state,
            roster=roster, limits=limits, seed=args.seed, rejected=unreadable,
        )  # fmt: skip
    except StoreError as exc:
        raise InputError(f"--state {args.state}: {exc}") from None


def _run_shard(
    args: argparse.Namespace,
    shard: tuple[int, int],
    base: str,
    updates: list[Update],
    **round_args: Any,
) -> int:
    """Shard I of N into ``--out`` (the round as ``aggregate_shard`` takes it), waiting at
    most ``--wait`` for the others; print its file's path. In the hub's Job
    (``FL_TERMINATION_LOG`` set, to the pod's termination message path), the digest of the
    file it ended with is written there: the kubelet reports it through the hub, and the
    reconcile pass merges only the files the shards reported."""
    from fl_gitops.aggregate._shards import ShardDirError, aggregate_shard, poll_for
    from fl_gitops.hub import SHARD_MESSAGE_ENV

    index, of = shard
    _shard_dir(args.out)

    def wait(paths: Sequence[str]) -> None:
        poll_for(paths, timeout=args.wait)

    def report(path: str, digest: str) -> None:
        where = os.environ.get(SHARD_MESSAGE_ENV)
        if not where:
            return
        try:
            with open(where, "w", encoding="utf-8") as f:
                f.write(digest + "\n")
        except OSError as exc:
            raise FlGitopsError(
                f"cannot write the shard's ending message to {SHARD_MESSAGE_ENV} "
                f"({exc.strerror}): the hub could not check this shard's files"
            ) from None

    try:
        path = aggregate_shard(
            base, updates, shard=index, of=of, out=args.out, wait=wait, on_written=report,
            **round_args,
        )  # fmt: skip
    except ShardDirError as exc:
        raise InputError(f"--shard {args.shard}: {exc}") from None
    print(f"shard {index}/{of}: done", file=sys.stderr)
    print(path)
    return 0

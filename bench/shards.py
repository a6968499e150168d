"""Benchmark a round aggregated in N shard processes against one pod's, and count S3 bytes.

    python bench/shards.py                       # K=8 updates of 16 MB, N=2: about a minute
    python bench/shards.py --data /tmp/flsh --repeat 5     # keep the files, 5 rounds
    python bench/shards.py --preset fedavg       # the issue's FedAvg size: K=24 x 50 MB
    python bench/shards.py --preset robust       # the issue's FedMedian/Krum size: K=16 x 100 MB
    python bench/shards.py --skip-s3             # the local comparison only
    python bench/shards.py --rates               # per-core kernel rates, for the estimate
    python bench/shards.py --preset fedavg --dtype f32,f16,bf16   # each dtype, same elements
    python bench/shards.py --dtype f16 --fold-budget 0     # F16, phase 1 folding nothing
    python bench/shards.py --preset fedavg --cpus-per-pod 1  # each pod limited to one core

Why: issue 12's targets for sharded aggregation are ratios measured in one run, the way a
user meets them: whole processes (interpreter start-up and imports included), the page
cache warm for both sides, runs interleaved so that a busy spell on the shared machine hits
both. It writes K float32 updates and a base model (``bench/aggregate.py``'s files: the same
``--data`` directory serves both benchmarks), then for each strategy (FedAvg, FedMedian,
Krum by default) and each repeat:

- ``one pod``: ``aggregate_round`` in one process (N = 1);
- ``N shards + merge``: N processes started at the same time, each running
  ``fl_gitops.aggregate._shards.aggregate_shard`` (shard I of N) into one shared directory
  on the local disk, then one process running ``merge_shards`` on it; the wall time runs
  from the start of the N to the end of the merge.

``--dtype f32,f16,bf16`` (default ``f32``) writes the same updates in each listed dtype
(``bench/aggregate.py``'s files: F16 and BF16 rounded from the float32 values, the same
element count, each dtype but float32 in a subdirectory named after it) and runs every
strategy on each, its lines labelled with the dtype: a 16-bit shard cannot keep a float64
sum of its whole slice under the memory target, so it folds only a prefix of it in phase 1
and reads the rest again (``--fold-budget``: the float64 bytes a shard may fold, ``whole``
for all of its slice as before, ``0`` for none; default the shard's own, twice its slice).

Each child reports its own peak resident memory (``VmHWM`` of ``/proc/self/status`` at its
end, imports included) and the time of its work alone. The memory target is compared with
``(model / N) x 3`` plus a constant measured here: the peak of an idle child that imported
the same modules and did nothing. Both sides' digests must be equal (the sharded round is
one pod's round, bit for bit). Printed: one ``target ...: met / NOT met`` line per target.

Then S3 (``--skip-s3`` to leave it out): a moto S3 server on loopback, in this process,
wrapped in a WSGI middleware that counts the body bytes of every GET it serves, by the
``User-Agent`` each shard process sends (``AWS_SDK_UA_APP_ID=fl-shard-I``); the updates are
uploaded and the N shards run against their ``s3://`` URIs (the global model stays a
local file, as the store's ``model_file`` hands it to a pod), and each shard's bytes are
printed against its slice and the whole files: ``shard I of N read X MB of Y MB (slice Z
MB)``, split into the bytes inside its slice, the rest of the blocks its slice's ends fall
in (updates named by ``blake3-blocks:`` are checked block by block against the list beside
them, which is read too), the whole-file reads of updates named by a digest of the whole
file, which the shard owning them must hash (update j by shard j mod N), and the headers.
moto is a Python server on the same cores: its times say nothing about S3's speed, only its
byte counts are figures.
A probe first checks that ``StoreRangeFile.read`` gets the range it asks s3fs for; when it
does not, that is printed as NOT working and the shards run with the range passed by
keyword (patched in their processes only), so that the bytes are still counted.

``--cpus-per-pod C`` plays pods with a CPU limit of C cores, each on a node of its own:
every process is pinned (its affinity, which also sizes its reader threads) to C cores,
one pod's to the first C, shard I's to cores [I·C, I·C + C). Without it every process may
use every core, and on a machine with fewer cores than shards x a pod's own use, the
shards only take turns on the same cores: that measures the machine, not the scaling.

``--rates`` prints the per-core rates of the kernels a shard runs (the sum, the distance
bound and the NaN check in float16 and float32, SHA-256, DP's noise, Krum's pairwise
distances and FedMedian's combine on a K x c block): what docs/architecture.md's estimate
of a 100 x 14 GB round divides its bytes by.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

MB = 1e6
# The dtypes --dtype knows, and their bytes per element (bench/aggregate.py's names).
DTYPES = {"f32": 4, "f16": 2, "bf16": 2}
OPTIONS: dict[str, dict[str, Any]] = {"krum": {"f": 1}}
PRESETS: dict[str, tuple[int, int, str]] = {
    # name: K, float32 parameters, strategies
    "small": (8, 4_000_000, "fedavg,fedmedian,krum"),
    "fedavg": (24, 12_500_000, "fedavg"),
    "robust": (16, 25_000_000, "fedmedian,krum"),
}


def _helpers() -> Any:
    """bench/aggregate.py, whose file writer and /proc readers this benchmark shares."""
    path = Path(__file__).with_name("aggregate.py")
    spec = importlib.util.spec_from_file_location("bench_aggregate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ the children


def worker(mode: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """One child's work (``mode``: idle, pod, shard or merge); returns what it measured.

    Every mode imports the same modules first, so that the idle child's peak is the
    constant the others carry.
    """
    if spec.get("cpus"):
        # A pod's CPU limit, played by its affinity (set before the imports, which count).
        os.sched_setaffinity(0, spec["cpus"])
    from fl_gitops.aggregate import NotEnoughUpdates, Update, aggregate_round
    from fl_gitops.aggregate._shards import aggregate_shard, merge_shards
    from fl_gitops.reports import HubReport

    if spec.get("s3"):
        import s3fs  # noqa: F401  (a shard imports it at its first URI: counted in both)

    from fl_gitops.aggregate.strategies import plan

    # Options are validated once (and what that loads, loaded) before the baseline, in
    # every mode alike.
    plan("fedavg", {})
    helpers = _helpers()
    rss = helpers._status("VmRSS")
    if mode == "idle":
        return {"hwm": helpers._status("VmHWM"), "rss": rss}
    directory = Path(spec["dir"])
    base = directory / "base.safetensors"
    bucket = spec.get("bucket")
    if mode == "probe":
        return _probe(directory, str(bucket))
    if spec.get("keyword_ranges"):
        _keyword_ranges()
    updates = []
    for cluster, path, meta in helpers._updates(directory, spec["k"]):
        where = f"s3://{bucket}/{path.name}" if bucket else path
        # As the reconcile job passes them: each digest as the cluster reported it.
        updates.append(
            Update(cluster, where, meta, HubReport(meta["sha256"], meta["num_examples"]))
        )
    strategy = spec["strategy"]
    options = dict(OPTIONS.get(strategy, {}))
    if strategy == "dp-fixed-clipping":
        from fl_gitops.tensors import read_header

        # As bench/aggregate.py: the updates are about 0.01 * sqrt(params) from the base,
        # so this clips about half of them.
        params = sum(t.size for t in read_header(base).tensors.values())
        options["clipping_norm"] = 0.01 * params**0.5
    start = time.perf_counter()
    digest = rejected = None
    if mode == "pod":
        result = aggregate_round(base, updates, strategy=strategy, options=options, round=1)
        digest, rejected = result.digest, result.rejected
    elif mode == "shard":
        try:
            budget = spec.get("fold_budget")
            aggregate_shard(
                base, updates, strategy=strategy, options=options, round=1,
                shard=spec["index"], of=spec["of"], out=spec["out"],
                fold_budget=(1 << 62) if budget == "whole" else budget,
            )  # fmt: skip
        except NotEnoughUpdates as exc:
            raise SystemExit(f"{exc}: {exc.rejected}") from None
    elif mode == "merge":
        result = merge_shards([spec["out"]])
        digest, rejected = result.digest, result.rejected
    else:
        raise SystemExit(f"--worker: unknown mode {mode!r}")
    return {
        "seconds": time.perf_counter() - start,
        "hwm": helpers._status("VmHWM"),
        "rss": rss,
        "digest": digest,
        "rejected": rejected,
    }


def _probe(directory: Path, bucket: str) -> dict[str, Any]:
    """Whether the shipped ``StoreRangeFile.read`` returns the bytes asked for from S3."""
    from fl_gitops.aggregate._shards import StoreRangeFile

    name = "cluster-000.safetensors"
    local = (directory / name).read_bytes()
    f = StoreRangeFile(f"s3://{bucket}/{name}")
    wrong = []
    for start, length in ((0, 8), (100, 8)):
        try:
            got = f.read(start, length)
        except Exception as exc:
            wrong.append(f"read({start}, {length}) raised {type(exc).__name__}")
            continue
        if got != local[start : start + length]:
            at = local.find(got[:64])
            wrong.append(
                f"read({start}, {length}) returned {len(got)} bytes"
                + (f" from offset {at}" if at >= 0 else ", not the file's")
            )
    return {"ok": not wrong, "detail": "; ".join(wrong)}


def _keyword_ranges() -> None:
    """``StoreRangeFile.read`` with the range passed as ``start=``/``end=`` (this child
    only): s3fs's ``cat_file(path, version_id=None, start=None, end=None)`` takes a third
    positional argument as the object's version, where fsspec's memory store takes it as
    the start."""
    from fl_gitops.aggregate import _shards
    from fl_gitops.tensors import HeaderError

    def read(self: Any, start: int, length: int) -> bytes:
        data = bytes(self.fs.cat_file(self._key, start=start, end=start + length))
        if len(data) < length:
            raise HeaderError(f"file ended at byte {start + len(data)} (truncated)")
        return data

    _shards.StoreRangeFile.read = read  # type: ignore[method-assign]


class ChildFailed(RuntimeError):
    """A worker process exited non-zero; carries the end of its stderr."""

    def __init__(self, what: str, rc: int, stderr: str) -> None:
        self.what, self.rc, self.stderr = what, rc, stderr
        super().__init__(f"{what} failed (exit {rc}):\n{stderr[-4000:]}")


class _Child:
    """A worker process, its output in temporary files (never a pipe that could fill)."""

    def __init__(self, mode: str, spec: Mapping[str, Any], env: Mapping[str, str] | None = None):
        self.what = f"{mode} {spec.get('strategy', '')} {spec.get('index', '')}".strip()
        # Closed in result(): the files outlive this call, as the process does.
        self._out: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self._err: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        argv = [sys.executable, __file__, "--worker", mode, "--spec", json.dumps(dict(spec))]
        self.proc = subprocess.Popen(
            argv, stdout=self._out, stderr=self._err, env=dict(env) if env else None
        )

    def result(self) -> dict[str, Any]:
        rc = self.proc.wait()
        self._out.seek(0)
        self._err.seek(0)
        out, err = self._out.read().decode(), self._err.read().decode()
        self._out.close()
        self._err.close()
        if rc != 0:
            raise ChildFailed(self.what, rc, err)
        return dict(json.loads(out))


def _wait_all(children: list[_Child]) -> list[dict[str, Any]]:
    """Every child's result; should one fail, the others are ended (they would otherwise
    wait for its files until their timeout)."""
    pending = list(children)
    while pending:
        for child in list(pending):
            rc = child.proc.poll()
            if rc is None:
                continue
            pending.remove(child)
            if rc != 0:
                for other in pending:
                    other.proc.kill()
                    other.proc.wait()
                child.result()  # raises, with its stderr
        time.sleep(0.005)
    return [c.result() for c in children]


def _pinned(spec: Mapping[str, Any], index: int = 0) -> dict[str, Any]:
    """``spec`` for the ``index``-th pod side by side: with ``cpus_per_pod`` C, it runs on
    cores [index·C, index·C + C) (modulo the machine's), as a pod whose CPU limit is C
    cores on a node of its own; without, on every core."""
    per = spec.get("cpus_per_pod")
    if not per:
        return dict(spec)
    cores = sorted(os.sched_getaffinity(0))
    return {**spec, "cpus": [cores[(index * per + j) % len(cores)] for j in range(per)]}


def _pod(spec: Mapping[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    result = _Child("pod", _pinned(spec)).result()
    result["wall"] = time.perf_counter() - start
    return result


def _sharded(
    spec: Mapping[str, Any],
    of: int,
    work: Path,
    env_of: Callable[[int], Mapping[str, str] | None] = lambda i: None,
) -> dict[str, Any]:
    """N shard processes side by side into a fresh shared dir, then the merge process."""
    out = Path(tempfile.mkdtemp(prefix="fl-shards-", dir=work))
    try:
        start = time.perf_counter()
        children = [
            _Child("shard", _pinned({**spec, "index": i, "of": of, "out": str(out)}, i), env_of(i))
            for i in range(of)
        ]
        shards = _wait_all(children)
        done = time.perf_counter()
        merge = _Child("merge", _pinned({**spec, "out": str(out)})).result()
        end = time.perf_counter()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {
        "wall": end - start,
        "shards_wall": done - start,
        "merge_wall": end - done,
        "shards": shards,
        "merge": merge,
        "digest": merge["digest"],
        "rejected": merge["rejected"],
    }


# ------------------------------------------------------------------ S3: bytes served


@dataclass(frozen=True)
class Served:
    """One GET the server answered: who asked, for which object and range, what it sent."""

    agent: str
    path: str
    range: tuple[int, int] | None  # [start, end) asked for, or None: the whole object
    status: str
    sent: int


@dataclass
class ServedLog:
    """A WSGI middleware around moto's app: records the body bytes of every GET."""

    app: Any
    entries: list[Served] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("REQUEST_METHOD") != "GET":
            return self.app(environ, start_response)
        status: list[str] = []

        def starting(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(code)
            return (
                start_response(code, headers, exc_info)
                if exc_info
                else start_response(code, headers)
            )

        body = self.app(environ, starting)
        return self._counted(environ, body, status)

    def _counted(self, environ: dict[str, Any], body: Iterable[bytes], status: list[str]) -> Any:
        sent = 0
        try:
            for chunk in body:
                sent += len(chunk)
                yield chunk
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            agent = re.search(r"app/(\S+)", environ.get("HTTP_USER_AGENT", ""))
            entry = Served(
                agent=agent.group(1) if agent else "",
                path=environ.get("PATH_INFO", ""),
                range=_parse_range(environ.get("HTTP_RANGE")),
                status=status[0].split()[0] if status else "",
                sent=sent,
            )
            with self.lock:
                self.entries.append(entry)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()

    def by(self, agent: str) -> list[Served]:
        with self.lock:
            return [e for e in self.entries if e.agent == agent]


def _parse_range(text: str | None) -> tuple[int, int] | None:
    m = re.fullmatch(r"bytes=(\d+)-(\d*)", text or "")
    if not m:
        return None
    start = int(m.group(1))
    return start, (int(m.group(2)) + 1 if m.group(2) else 1 << 62)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _moto_server() -> Iterator[tuple[str, ServedLog]]:
    """moto's S3 server on loopback (as ``ThreadedMotoServer`` builds it), counted."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class Quiet(MotoRequestHandler):
        def log_request(self, *args: Any) -> None:
            pass  # a line per request would bury the figures

    log = ServedLog(DomainDispatcherApplication(create_backend_app))
    port = _free_port()
    server = make_server("127.0.0.1", port, log, True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", log
    finally:
        server.shutdown()
        thread.join()


def _s3_env(endpoint: str, agent: str) -> dict[str, str]:
    """A shard's environment: the store's variables (docs/operations.md), pointed at moto."""
    return dict(
        os.environ,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
        # No profile of this machine's user is read.
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_SDK_UA_APP_ID=agent,
    )


def _slice_ranges(directory: Path, k: int, of: int) -> dict[int, dict[str, list[tuple[int, int]]]]:
    """Shard -> update file name -> the byte ranges of its slice, as the shard plan cuts it."""
    from fl_gitops.aggregate._shards import ShardPlan
    from fl_gitops.tensors import read_header

    plan = ShardPlan.of_header(read_header(directory / "base.safetensors"), of)
    out: dict[int, dict[str, list[tuple[int, int]]]] = {}
    for i in range(of):
        pieces = plan.pieces(i)
        out[i] = {}
        for j in range(k):
            name = f"cluster-{j:03d}.safetensors"
            header = read_header(directory / name)
            ranges = []
            for p in pieces:
                info = header.tensors[p.name]
                item = info.np_dtype.itemsize
                ranges.append((info.start + p.start * item, info.start + p.stop * item))
            out[i][name] = ranges
    return out


@dataclass
class ShardBytes:
    """What one shard was served, by kind."""

    total: int = 0
    in_slice: int = 0
    hashed: int = 0  # whole-file reads of the updates whose digest it owns
    header: int = 0
    edges: int = 0  # the rest of the blocks its slice's ends fall in, read to check them
    lists: int = 0  # the updates' block lists
    other: int = 0
    requests: int = 0


def _widened(offset: int, up: bool = False) -> int:
    """``offset`` moved out to the block boundary below it (``up``: above it)."""
    from fl_gitops.tensors import BLOCK_BYTES

    return (-(-offset // BLOCK_BYTES) if up else offset // BLOCK_BYTES) * BLOCK_BYTES


def _classify(
    entries: list[Served], ranges: Mapping[str, list[tuple[int, int]]], owned: set[str],
    data_start: Mapping[str, int],
) -> ShardBytes:  # fmt: skip
    out = ShardBytes()
    for e in entries:
        name = e.path.rsplit("/", 1)[-1]
        out.total += e.sent
        out.requests += 1
        lo, hi = e.range if e.range is not None else (0, e.sent)
        hi = min(hi, lo + e.sent)
        if name.endswith(".blocks"):
            out.lists += e.sent
            continue
        mine = ranges.get(name, [])
        if any(a <= lo and hi <= b for a, b in mine):
            out.in_slice += e.sent
        elif any(_widened(a) <= lo and hi <= _widened(b, up=True) for a, b in mine):
            inside = sum(max(0, min(hi, b) - max(lo, a)) for a, b in mine)
            out.in_slice += inside
            out.edges += e.sent - inside
        elif name in data_start and hi <= max(data_start[name], _widened(1, up=True)):
            out.header += e.sent
        elif name in owned:
            out.hashed += e.sent
        else:
            out.other += e.sent
    return out


def _s3(
    directory: Path, k: int, of: int, strategies: list[str], work: Path,
    local: Mapping[str, str | None], fold: int | str | None = None,
) -> None:  # fmt: skip
    """Upload the updates to moto, run the N shards on their s3:// URIs, count the bytes."""
    import s3fs

    from fl_gitops.tensors import read_header

    names = [f"cluster-{j:03d}.safetensors" for j in range(k)]
    whole = sum((directory / n).stat().st_size for n in names)
    ranges = _slice_ranges(directory, k, of)
    data_start = {n: read_header(directory / n).data_start for n in names}
    with _moto_server() as (endpoint, log):
        fs = s3fs.S3FileSystem(
            endpoint_url=endpoint, key="testing", secret="testing",
            skip_instance_cache=True,
        )  # fmt: skip
        bucket = f"fl-bench-{uuid.uuid4().hex[:8]}"
        fs.mkdir(bucket)
        t0 = time.perf_counter()
        for n in names:
            fs.put_file(str(directory / n), f"{bucket}/{n}")
            blocks = directory / n.replace(".safetensors", ".blocks")
            if blocks.exists():  # the list the store keeps beside an update
                fs.put_file(str(blocks), f"{bucket}/{blocks.name}")
        print(
            f"\n== S3 through moto's server at {endpoint}: {k} updates ({whole / MB:.1f} MB) "
            f"uploaded to s3://{bucket}/ in {time.perf_counter() - t0:.1f} s; "
            f"{of} shards read them by URI (the global model is a local file)"
        )
        spec0 = {"dir": str(directory), "s3": True, "bucket": bucket}
        probe = _Child("probe", spec0, _s3_env(endpoint, "fl-probe")).result()
        patched = not probe["ok"]
        if patched:
            print(
                "NOT working: fl_gitops's StoreRangeFile.read on s3:// does not return the "
                f"range asked for ({probe['detail']}); below, the shards run with the "
                "range passed to s3fs's cat_file as start=/end= keywords (patched in the "
                "bench's shard processes only)"
            )
        for strategy in strategies:
            log.clear()
            spec = {**spec0, "k": k, "strategy": strategy, "keyword_ranges": patched}
            if fold is not None:
                spec["fold_budget"] = fold
            run = _sharded(spec, of, work, lambda i: _s3_env(endpoint, f"fl-shard-{i}"))
            same = run["digest"] == local.get(strategy)
            print(
                f"\n{strategy}: {of} shards + merge on s3:// in {run['wall']:.2f} s "
                + ("(patched range reads) " if patched else "")
                + "(moto on these cores: not a figure of S3's speed); digest "
                + (
                    "the same as the local pod's"
                    if same
                    else f"{run['digest']}, NOT the local pod's {local.get(strategy)}"
                )
            )
            for i in range(of):
                owned = {n for j, n in enumerate(names) if j % of == i}
                got = _classify(log.by(f"fl-shard-{i}"), ranges[i], owned, data_start)
                sl = sum(b - a for rs in ranges[i].values() for a, b in rs)
                print(
                    f"shard {i} of {of} read {got.total / MB:.1f} MB of {whole / MB:.1f} MB "
                    f"(slice {sl / MB:.1f} MB) in {got.requests} GETs: "
                    f"{got.in_slice / MB:.1f} MB inside its slice ({got.in_slice / sl:.2f}x it), "
                    f"{got.hashed / MB:.1f} MB the whole files of the updates whose digest "
                    f"(of the whole file) it owns, {got.edges / MB:.2f} MB the rest of the "
                    f"blocks its slice's ends fall in, {got.header / MB:.2f} MB headers (and "
                    f"their blocks), {got.lists / 1e3:.1f} kB block lists, "
                    f"{got.other / MB:.1f} MB other"
                )
                only = got.hashed == 0 and got.other == 0
                print(
                    f"target {strategy}: shard {i} transfers only its slice (and headers, the "
                    "block lists and the blocks its ends fall in): "
                    + ("met" if only else "NOT met")
                    + (
                        ""
                        if only
                        else f" ({(got.hashed + got.other) / MB:.1f} MB beyond it"
                        + (": the whole-file digests it owns)" if got.other == 0 else ")")
                    )
                )


# ------------------------------------------------------------------ per-core rates


def _best(fn: Callable[[], Any], repeat: int = 5) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def rates(k: int) -> None:
    """The per-core rates of the kernels a shard runs, in this process, one core: what
    docs/architecture.md's estimate of a large round divides its bytes by."""
    import hashlib

    import numpy as np

    from fl_gitops.aggregate._engine import _stack_step
    from fl_gitops.aggregate.strategies import plan
    from fl_gitops.aggregate.strategies._arith import (
        BLOCK,
        add_weighted,
        distance_scratch,
        finite,
        squared_distance_bound,
    )
    from fl_gitops.aggregate.strategies.base import Block, Pool, Slice
    from fl_gitops.tensors import DEFAULT_CHUNK, widen_f16

    rng = np.random.default_rng(0)
    n = DEFAULT_CHUNK
    print(f"per-core rates (best of 5, one core; load average {os.getloadavg()[0]:.2f}):")
    for dtype in (np.float16, np.float32):
        x = rng.standard_normal(n).astype(dtype)
        b = rng.standard_normal(n).astype(dtype)
        acc = np.zeros(n)
        tmp = np.empty(BLOCK)
        scratch = distance_scratch(x.dtype, n)
        nbytes = x.nbytes
        name = np.dtype(dtype).name
        t_add = _best(functools.partial(add_weighted, acc, [x], [3.0], tmp))
        t_dist = _best(functools.partial(squared_distance_bound, x, b, scratch))
        t_fin = _best(functools.partial(finite, x))
        print(
            f"  {name}: add_weighted {nbytes / t_add / 1e9:.2f} GB/s, squared_distance_bound "
            f"{nbytes / t_dist / 1e9:.2f} GB/s, finite {nbytes / t_fin / 1e9:.2f} GB/s "
            f"(of the update's bytes, a chunk of {n:,} elements)"
        )
        if dtype == np.float16:
            # What a shard runs on a float16 read: widened to float32 by table first
            # (_shards._values), then the same three kernels on float32.
            # Into a buffer that is reused, as the allocator reuses a read's in a shard.
            wx, wb = widen_f16(x), widen_f16(b)
            t_wide = _best(functools.partial(widen_f16, x, np.empty(n, dtype=np.float32)))
            wscratch = distance_scratch(wx.dtype, n)
            t_all = (
                t_wide
                + _best(functools.partial(add_weighted, acc, [wx], [3.0], tmp))
                + _best(functools.partial(squared_distance_bound, wx, wb, wscratch))
                + _best(functools.partial(finite, wx))
            )
            print(
                f"  float16 widened by table (a shard's reads): widen_f16 "
                f"{nbytes / t_wide / 1e9:.2f} GB/s; widen, add, bound and check together "
                f"{nbytes / t_all / 1e9:.2f} GB/s of the update's bytes"
            )
    data = rng.bytes(64 << 20)
    t_sha = _best(lambda: hashlib.sha256(data).digest(), 3)
    print(f"  SHA-256 {len(data) / t_sha / 1e9:.2f} GB/s")
    # DP's noise: a shard draws (and drops) the noise of every element before its slice.
    t_noise = _best(functools.partial(rng.normal, 0.0, 1.0, size=n), 3)
    print(f"  DP noise drawn (rng.normal, float64): {n / t_noise / 1e6:.0f} M elements/s")
    step = _stack_step(1 << 40, k, DEFAULT_CHUNK)
    stack = rng.standard_normal((k, step))
    block = Block(Slice("t", 0, step), stack, lambda: np.zeros(step))
    partials = plan("krum", {"f": 1}).combiner.partials
    assert partials is not None
    t_krum = _best(functools.partial(partials, block), 3)
    pairs = k * (k - 1) / 2 * step
    median = plan("fedmedian", {}).combiner.choose(
        Pool(clusters=tuple(map(str, range(k))), weights=(1.0,) * k, norms=None, stats=None,
             seed=0)
    )  # fmt: skip
    t_med = _best(functools.partial(median.combine, block), 3)
    print(
        f"  Krum's pairwise distances: {pairs / t_krum / 1e9:.2f} G element-pairs/s "
        f"(K={k}: a {k} x {step:,} block in {t_krum * 1e3:.0f} ms)"
    )
    print(
        f"  FedMedian's combine: {k * step / t_med / 1e9:.3f} G elements/s "
        f"(K={k}: a {k} x {step:,} block in {t_med * 1e3:.0f} ms)"
    )


# ------------------------------------------------------------------ the driver


def _warm(directory: Path) -> None:
    """Read every file once, so that both sides start from a warm page cache."""
    for path in sorted(directory.iterdir()):
        if path.is_file():
            with open(path, "rb", buffering=0) as f:
                while f.read(8 << 20):
                    pass


def _report(
    strategy: str, pods: list[dict[str, Any]], runs: list[dict[str, Any]],
    model_bytes: int, of: int, idle_hwm: int, dtype: str = "f32",
) -> None:  # fmt: skip
    pod = min(pods, key=lambda r: r["wall"])
    run = min(runs, key=lambda r: r["wall"])
    pod_med = statistics.median(r["wall"] for r in pods)
    run_med = statistics.median(r["wall"] for r in runs)
    paired = statistics.median(b["wall"] / a["wall"] for a, b in zip(pods, runs, strict=True))
    print(f"\n{strategy} [{dtype}] (best of {len(pods)} interleaved runs; wall: whole processes)")
    strategy = f"{strategy} [{dtype}]"
    print(
        f"  one pod:           wall {pod['wall']:6.2f} s (median {pod_med:.2f}), "
        f"its work {pod['seconds']:.2f} s, peak {pod['hwm'] / MB:.1f} MB"
    )
    works = ", ".join(f"{s['seconds']:.2f}" for s in run["shards"])
    peaks = ", ".join(f"{s['hwm'] / MB:.1f}" for s in run["shards"])
    print(
        f"  {of} shards + merge:  wall {run['wall']:6.2f} s (median {run_med:.2f}) = "
        f"shards {run['shards_wall']:.2f} s + merge {run['merge_wall']:.2f} s; "
        f"their work {works} s + {run['merge']['seconds']:.2f} s; "
        f"peaks {peaks} MB, merge {run['merge']['hwm'] / MB:.1f} MB"
    )
    inner = (max(s["seconds"] for s in run["shards"]) + run["merge"]["seconds"]) / pod["seconds"]
    ratio = run["wall"] / pod["wall"]
    print(
        f"target {strategy}: {of} shards at most 0.6x the wall of one pod: "
        f"{'met' if ratio <= 0.6 else 'NOT met'} ({ratio:.2f}x best to best; median of the "
        f"{len(pods)} paired ratios {paired:.2f}x; the work alone, without start-up, "
        f"{inner:.2f}x)"
    )
    bound = model_bytes / of * 3 + idle_hwm
    worst = max(s["hwm"] for s in run["shards"])
    print(
        f"target {strategy}: a shard's peak at most (model / N) x 3 + an idle child's peak = "
        f"{model_bytes / MB:.1f} / {of} x 3 + {idle_hwm / MB:.1f} = {bound / MB:.1f} MB: "
        f"{'met' if worst <= bound else 'NOT met'} (largest {worst / MB:.1f} MB, "
        f"{(worst - idle_hwm) / (model_bytes / of):.2f}x its slice above the idle peak)"
    )
    digests = {r["digest"] for r in pods} | {r["digest"] for r in runs}
    rejected = [r["rejected"] for r in pods + runs if r["rejected"]]
    print(
        f"digests: {'the same' if len(digests) == 1 else 'DIFFERENT'} on both sides "
        f"({', '.join(sorted(digests))})" + (f"; rejections: {rejected[0]}" if rejected else "")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="small",
        help="sizes and strategies: small (K=8 x 16 MB, FedAvg/FedMedian/Krum; default), "
        "fedavg (K=24 x 50 MB), robust (K=16 x 100 MB, FedMedian/Krum); --k, --params and "
        "--strategies override it",
    )
    parser.add_argument("--k", type=int, help="updates per round")
    parser.add_argument("--params", type=int, help="float32 parameters per model")
    parser.add_argument("--tensors", type=int, default=4, help="tensors per model (default 4)")
    parser.add_argument("--strategies", help="comma-separated strategies to time")
    parser.add_argument("--shards", type=int, default=2, help="N, shards side by side (default 2)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="interleaved runs of each side; best kept (default 3)"
    )
    parser.add_argument(
        "--data",
        help="keep the files in this directory; files written by an earlier run (of this "
        "bench or bench/aggregate.py) with the same --params and --tensors are reused",
    )
    parser.add_argument(
        "--work",
        help="where the shards' shared directories go (default: next to the files, on the "
        "same disk)",
    )
    parser.add_argument("--skip-s3", action="store_true", help="leave out the S3 byte count")
    parser.add_argument(
        "--s3-strategies",
        default="fedavg,krum",
        help="strategies whose shards run against S3 (default fedavg,krum)",
    )
    parser.add_argument(
        "--rates",
        action="store_true",
        help="print the per-core rates of the kernels a shard runs (for K = --k, default "
        "100) and exit: the divisors of docs/architecture.md's estimate",
    )
    parser.add_argument(
        "--dtype",
        default="f32",
        help="comma-separated dtypes of the models and updates (f32, f16, bf16; default "
        "f32), each written with the same elements and run in turn",
    )
    parser.add_argument(
        "--fold-budget",
        default="default",
        help="the float64 bytes a shard folds in phase 1: default (the shard's own: twice "
        "its slice), whole (all of its slice, as before sub-slices), or a number of bytes "
        "(0: none, every contributor's slice read again to combine it)",
    )
    parser.add_argument(
        "--cpus-per-pod",
        type=int,
        default=0,
        help="run every process (one pod, each shard, the merge) on this many cores of its "
        "own, as pods whose CPU limit is that many cores, shard I on cores [I*C, I*C + C); "
        "default 0: every process on every core",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker, json.loads(args.spec or "{}"))))
        return 0

    if args.rates:
        k = args.k if args.k is not None else 100
        if k < 2:
            print(f"--k: expected an integer >= 2 with --rates, got {k}", file=sys.stderr)
            return 2
        rates(k)
        return 0
    k0, params0, strategies0 = PRESETS[args.preset]
    k = args.k if args.k is not None else k0
    params = args.params if args.params is not None else params0
    strategies = [s for s in (args.strategies or strategies0).split(",") if s]
    s3_strategies = [s for s in args.s3_strategies.split(",") if s]
    bounds = [
        ("--k", k, 1),
        ("--params", params, 1),
        ("--shards", args.shards, 2),
        ("--repeat", args.repeat, 1),
        ("--tensors", args.tensors, 1),
        ("--cpus-per-pod", args.cpus_per_pod, 0),
    ]
    for flag, value, least in bounds:
        if value < least:
            print(f"{flag}: expected an integer >= {least}, got {value}", file=sys.stderr)
            return 2
    dtypes = list(dict.fromkeys(d.strip() for d in args.dtype.split(",") if d.strip()))
    unknown_dtypes = [d for d in dtypes if d not in DTYPES]
    if unknown_dtypes or not dtypes:
        print(
            f"--dtype: {', '.join(unknown_dtypes) or 'nothing'}: expected f32, f16 or bf16",
            file=sys.stderr,
        )
        return 2
    fold: int | str | None = None
    if args.fold_budget == "whole":
        fold = "whole"
    elif args.fold_budget != "default":
        try:
            fold = int(args.fold_budget)
        except ValueError:
            fold = -1
        if fold < 0:
            print(
                f"--fold-budget: expected default, whole or a number of bytes >= 0, got "
                f"{args.fold_budget!r}",
                file=sys.stderr,
            )
            return 2
    from fl_gitops.aggregate.strategies import STRATEGIES

    for flag, names in (("--strategies", strategies), ("--s3-strategies", s3_strategies)):
        unknown = [s for s in names if s not in STRATEGIES]
        if unknown:
            print(
                f"{flag}: unknown strategy {unknown[0]!r}; expected one of "
                f"{', '.join(sorted(STRATEGIES))}",
                file=sys.stderr,
            )
            return 2
    if "krum" in strategies + s3_strategies and k < 5:
        print("--k: Krum with f=1 needs at least 5 updates", file=sys.stderr)
        return 2

    helpers = _helpers()
    helpers.compile_package()  # as the image has it: bytecode written at install
    manifest = {
        "k": k,
        "params": params,
        "tensors": args.tensors,
        "seed": 0,
        "digest": "blake3-blocks",
    }
    temporary = not args.data
    directory = Path(args.data or tempfile.mkdtemp(prefix="fl-bench-shards-"))
    directory.mkdir(parents=True, exist_ok=True)
    # float32's files at the top (as before, and as bench/aggregate.py writes them), each
    # other dtype's in a subdirectory named after it, with its own manifest.
    dirs = {d: directory if d == "f32" else directory / d for d in dtypes}
    wants = {d: manifest if d == "f32" else {**manifest, "dtype": d} for d in dtypes}

    def reusable(d: str) -> bool:
        old = helpers._manifest(dirs[d])
        # Cluster j's bytes depend only on the seed and the sizes, not on K: more will do.
        return (
            old is not None
            and old["k"] >= k
            and old.get("dtype", "f32") == d
            and all(old[key] == wants[d][key] for key in ("params", "tensors", "seed"))
        )

    reuse = {d: reusable(d) for d in dtypes}
    need = sum(
        0 if reuse[d] else int((k + 1) * params * DTYPES[d] * 1.01) + 64 * 1024 * 1024
        for d in dtypes
    )
    free = shutil.disk_usage(directory).free
    if free < need:
        print(
            f"need {need / 1e9:.1f} GB free in {directory}, have {free / 1e9:.1f} GB: "
            "use --k or --params for a smaller run",
            file=sys.stderr,
        )
        return 2
    work = Path(args.work) if args.work else directory.parent
    work.mkdir(parents=True, exist_ok=True)
    try:
        model_bytes: dict[str, int] = {}
        for d in dtypes:
            t0 = time.perf_counter()
            where = dirs[d]
            where.mkdir(parents=True, exist_ok=True)
            if reuse[d]:
                model_bytes[d] = (where / "base.safetensors").stat().st_size
                action = "reusing"
            else:
                (where / "bench.json").unlink(missing_ok=True)
                model_bytes[d] = helpers._write_files(
                    where, k, params, args.tensors, seed=0, dtype=d
                )
                (where / "bench.json").write_text(json.dumps(wants[d]))
                action = f"wrote in {time.perf_counter() - t0:.1f} s"
            _warm(where)
            print(
                f"{k} updates of {model_bytes[d] / MB:.1f} MB ({params:,} {d} in "
                f"{args.tensors} tensors), {action}, in {where}"
            )
        print(
            f"shards' dirs in {work}; page cache warm; {helpers._cores()} cores, load "
            f"average {os.getloadavg()[0]:.2f} before the runs"
            + ("" if fold is None else f"; shards fold {fold} bytes of float64 (--fold-budget)")
        )
        if args.cpus_per_pod:
            spare = helpers._cores() - args.cpus_per_pod * args.shards
            print(
                f"each process on {args.cpus_per_pod} core(s) of its own (--cpus-per-pod): "
                "one pod on the first, shard I on the I-th"
                + ("" if spare >= 0 else f"; NOTE: the {args.shards} shards share cores")
            )
        idles = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            idle = _Child("idle", {}).result()
            idles.append((time.perf_counter() - start, idle["hwm"]))
        idle_hwm = int(statistics.median(h for _, h in idles))
        print(
            f"an idle child (start-up and the same imports, no work): "
            f"{min(s for s, _ in idles):.2f} s, peak {idle_hwm / MB:.1f} MB"
        )
        cases = [(d, st) for d in dtypes for st in strategies]
        pods: dict[tuple[str, str], list[dict[str, Any]]] = {c: [] for c in cases}
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {c: [] for c in cases}
        for repeat in range(args.repeat):
            for d, strategy in cases:
                spec: dict[str, Any] = {"dir": str(dirs[d]), "k": k, "strategy": strategy}
                if args.cpus_per_pod:
                    spec["cpus_per_pod"] = args.cpus_per_pod
                if fold is not None:
                    spec["fold_budget"] = fold
                # In turn first, so that neither side always follows the same run.
                for side in ("pod", "shards") if repeat % 2 == 0 else ("shards", "pod"):
                    if side == "pod":
                        pods[(d, strategy)].append(_pod(spec))
                    else:
                        runs[(d, strategy)].append(_sharded(spec, args.shards, work))
        for d, strategy in cases:
            _report(
                strategy, pods[(d, strategy)], runs[(d, strategy)], model_bytes[d],
                args.shards, idle_hwm, d,
            )  # fmt: skip
        if not args.skip_s3:
            for d in dtypes:
                local = {s: pods[(d, s)][0]["digest"] for s in strategies}
                for s in s3_strategies:
                    if s not in local:
                        local[s] = _pod({"dir": str(dirs[d]), "k": k, "strategy": s})["digest"]
                if len(dtypes) > 1:
                    print(f"\n== [{d}]")
                _s3(dirs[d], k, args.shards, s3_strategies, work, local, fold)
        print(f"\nload average {os.getloadavg()[0]:.2f} after the runs")
    finally:
        if temporary:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        try:
            sys.exit(main())
        except ChildFailed as exc:
            print(exc, file=sys.stderr)
            sys.exit(1)

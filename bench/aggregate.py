"""Benchmark streaming aggregation against reading the files once and against load-all.

    python bench/aggregate.py                     # K=32 updates of a 25M-parameter model
    python bench/aggregate.py --k 8 --params 4000000   # a quick run
    python bench/aggregate.py --data /tmp/flb --repeat 5         # keep the files, 5 rounds
    python bench/aggregate.py --data /tmp/flb --repeat 3 --cache both  # and from the disk

Writes K float32 updates (``--params`` parameters in ``--tensors`` tensors, ~100 MB each at
25M) and a base model as safetensors files in a temporary directory (3.3 GB at the defaults;
free space is checked first), then runs each variant in a fresh subprocess and reports its
wall time, its CPU time (user + system, every thread) and its peak resident memory above
the interpreter's baseline (VmHWM after the work minus VmRSS after the imports; the
high-water mark is reset before the work where the kernel allows it):

- ``floor``: read every update file once, in 8 MB chunks, doing nothing else;
- ``floor+hash``: the same, hashing the bytes on one thread with the algorithm the
  files' metadata names (``--digest``: ``blake3-blocks``, as clusters name their updates
  now, or ``blake3`` or ``sha256`` of the whole file, as they did before);
- ``floor+hash-par``: the same on one thread per core (the least a verified read of these
  files can cost on this machine);
- ``stream-fedavg``: ``aggregate_round(strategy="fedavg")``, the whole call: the base
  model's digest, every update's digest, NaN/Inf and shape checks, the weighted mean and
  the new model's bytes and digest;
- ``loadall-fedavg``: read and verify every file, load them all with
  ``safetensors.numpy.load``, then average tensor by tensor over the stacked updates (the
  way frameworks that keep every update in memory do it);
- ``flower-fedavg``: Flower's server-side FedAvg arithmetic (every update loaded, each
  layer times its example count, added, divided by the total), no verification; timed as a
  whole process beside ``stream-fedavg`` (start-up and imports included) for the ratio;
- ``stream-fedavg-nobound``: the same with the influence bounds off (no distance bound, no
  ceiling on ``num_examples``) and the store's metadata trusted, as before they existed;
  ``stream-fedavg`` runs with the defaults (the distance of every update to the global
  model measured in the pass that sums it, against 10 x the round's median) and with each
  update's digest and ``num_examples`` given as reported through the hub. The two run back
  to back in each repeat (in turn first), and a line gives what the bound and the digest
  check cost: the median of the pairs' ratios, the best times' and the least CPU's (target
  <= 10%);
- ``stream-fedmedian``, ``stream-krum`` and ``stream-dp`` (``dp-fixed-clipping`` around
  FedAvg: a checking pass for the norms, then the clipped sum) over the first
  ``--k-robust`` (16) updates.

``--dtype f32,f16,bf16`` (default ``f32``) writes the same updates (the same element count)
in each listed dtype, F16 and BF16 rounded from the float32 values, and runs ``floor`` and
every ``stream-*`` variant on each (rows ``name[bf16]``; load-all and Flower read float32
only): a line per variant then gives each dtype's time, CPU and peak against float32's in
the same run, so that the cost of widening BF16 (it has no numpy dtype) is measured beside
F16's numpy cast and float32's none.

``--against DIR`` runs every ``stream-*`` variant a second time with ``fl_gitops`` imported
from DIR (a ``git worktree`` of another commit), interleaved run by run with this tree's, so
that two versions are compared in one run on the same disturbances (``name@against`` rows,
and a line per variant with the ratio of the best times and whether the digests agree).

Other engineers' work shares the machine, so ``--repeat N`` runs the whole plan N times
back to back and reports each variant's best run (the least disturbed) with the median and
the load average as it started. Files are read from the page cache (they were just
written) unless ``--cache cold`` (or ``--cold``), which evicts each file with
``posix_fadvise(DONTNEED)`` before every run so that reads hit the disk; ``--cache both``
runs the plan warm, then cold.

Every byte of every update is hashed (with the algorithm its metadata names). The report
says how fast that hash runs here per CPU second and what that allows on this machine's
cores: with a warm page cache the plain floor copies bytes faster than all the cores can
hash them, so no verified read can come near it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CHUNK = 8 * 1024 * 1024


# ------------------------------------------------------------------ measuring (in the worker)


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0; needs write access to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _updates(directory: Path, k: int) -> list[tuple[str, Path, dict[str, Any]]]:
    out = []
    for i in range(k):
        cluster = f"cluster-{i:03d}"
        meta = json.loads((directory / f"{cluster}.json").read_text())
        out.append((cluster, directory / f"{cluster}.safetensors", meta))
    return out


def _hasher(digest: str) -> Any:
    """A hasher of the algorithm an update's digest names, as the aggregation checks it."""
    from fl_gitops.tensors import new_hasher

    return new_hasher(digest)


def _floor(paths: list[Path], digests: list[str] | None) -> None:
    """Read every file in chunks; with ``digests``, hash each by the algorithm its digest
    names (known before the timing starts: nothing else is read here)."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    for i, path in enumerate(paths):
        h = _hasher(digests[i]) if digests is not None else None
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(view):
                if h is not None:
                    h.update(view[:n])


def compile_package() -> None:
    """Write fl_gitops's bytecode before any timed process starts, as ``pip install`` does
    for the image the Jobs run: with ``PYTHONDONTWRITEBYTECODE`` set (the Dockerfile sets
    it, and so may the shell) an editable install is otherwise compiled from source by
    every process: 0.39 s of start-up against 0.30 s on this machine, a cost no pod pays, while the
    other side's numpy and safetensors come compiled from their wheels."""
    import compileall

    import fl_gitops

    compileall.compile_dir(Path(fl_gitops.__file__).parent, quiet=1)


def _cores() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


def _floor_parallel(paths: list[Path], digests: list[str]) -> None:
    """Read and hash the files on every core at once, one file per thread at a time."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=_cores()) as pool:
        list(pool.map(lambda pd: _floor([pd[0]], [pd[1]]), zip(paths, digests, strict=True)))


def _loadall(directory: Path, updates: list[tuple[str, Path, dict[str, Any]]]) -> str:
    import safetensors.numpy

    from fl_gitops.tensors import serialize

    models = []
    weights = []
    for cluster, path, meta in updates:
        data = path.read_bytes()
        h = _hasher(meta["sha256"])
        h.update(data)
        if f"{meta['sha256'].partition(':')[0]}:{h.hexdigest()}" != meta["sha256"]:
            raise SystemExit(f"{cluster}: digest mismatch")
        tensors = safetensors.numpy.load(data)
        del data
        for name, arr in tensors.items():
            if not np.isfinite(arr).all():
                raise SystemExit(f"{cluster}: {name} not finite")
        models.append(tensors)
        weights.append(meta["num_examples"])
    w = np.array(weights, dtype=np.float64) / sum(weights)
    new = {}
    for name in sorted(models[0]):
        stacked = np.stack([m[name] for m in models])
        new[name] = np.tensordot(w.astype(np.float32), stacked, axes=1)
        del stacked
    return "sha256:" + hashlib.sha256(serialize(new)).hexdigest()


def _flower(updates: list[tuple[str, Path, dict[str, Any]]]) -> str:
    """Flower's server-side FedAvg: every update loaded as a list of arrays, each layer
    multiplied by the update's example count, the layers added up and divided by the
    total (the arithmetic of ``flwr.server.strategy.aggregate.aggregate``, written here;
    Flower itself is not a dependency). Nothing is verified: Flower has no digests."""
    import functools

    import safetensors.numpy

    results = []
    for _, path, meta in updates:
        tensors = safetensors.numpy.load_file(str(path))
        results.append(([tensors[n] for n in sorted(tensors)], meta["num_examples"]))
    names = sorted(safetensors.numpy.load_file(str(updates[0][1])))
    total = sum(n for _, n in results)
    weighted = [[layer * n for layer in layers] for layers, n in results]
    averaged = [functools.reduce(np.add, layer) / total for layer in zip(*weighted, strict=True)]
    buf = b"".join(np.ascontiguousarray(a).tobytes() for a in averaged)
    return "sha256:" + hashlib.sha256(buf + ",".join(names).encode()).hexdigest()


# The dtypes --dtype knows: safetensors code, bytes per element.
DTYPES = {"f32": ("F32", 4), "f16": ("F16", 2), "bf16": ("BF16", 2)}


def _split_dtype(variant: str) -> tuple[str, str]:
    """``name[bf16]`` -> (``name``, ``bf16``); a plain name is float32's."""
    if variant.endswith("]") and "[" in variant:
        name, _, dtype = variant[:-1].partition("[")
        return name, dtype
    return variant, "f32"


def worker(variant: str, directory: Path, k: int) -> dict[str, Any]:
    if variant.startswith("stream-"):
        from fl_gitops.aggregate import aggregate_round

    updates = _updates(directory, k)
    paths = [p for _, p, _ in updates]
    digests = [str(m["sha256"]) for _, _, m in updates]
    base = directory / "base.safetensors"
    baseline = _status("VmRSS")
    reset = _reset_peak()
    load = os.getloadavg()[0]
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    digest = None
    if variant == "floor":
        _floor(paths, None)
    elif variant == "floor+hash":
        _floor(paths, digests)
    elif variant == "floor+hash-par":
        _floor_parallel(paths, digests)
    elif variant == "loadall-fedavg":
        digest = _loadall(directory, updates)
    elif variant == "flower-fedavg":
        digest = _flower(updates)
    else:
        from fl_gitops.aggregate import Limits, Update

        limits = None
        items: list[Any] = list(updates)
        # An --against tree from before the bounds and the hub's reports runs as it did (its
        # own Limits says which; the editable install would lend it this tree's reports.py).
        if "median_distance_multiple" not in getattr(Limits, "__dataclass_fields__", {}):
            pass
        elif variant == "stream-fedavg-nobound":
            limits = Limits(median_distance_multiple=None, max_num_examples=None)
        else:
            from fl_gitops.reports import HubReport

            # What each cluster reported through the hub: the digest the bytes must match.
            items = [
                Update(c, p, m, HubReport(m["sha256"], m["num_examples"])) for c, p, m in updates
            ]
        strategy = {
            "stream-fedavg": "fedavg",
            "stream-fedavg-nobound": "fedavg",
            "stream-fedmedian": "fedmedian",
            "stream-krum": "krum",
            "stream-dp": "dp-fixed-clipping",
        }[variant]
        options: dict[str, Any] = {}
        if strategy == "krum":
            options = {"f": 1}
        elif strategy == "dp-fixed-clipping":
            from fl_gitops.tensors import read_header

            # The updates are about 0.01 * sqrt(params) from the base: clip about half.
            params = sum(t.size for t in read_header(base).tensors.values())
            options = {"clipping_norm": 0.01 * params**0.5}
        result = aggregate_round(
            base, items, strategy=strategy, options=options, round=1, limits=limits
        )
        if result.rejected:
            raise SystemExit(f"unexpected rejections: {result.rejected}")
        digest = result.digest
    seconds = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    peak = _status("VmHWM")
    return {
        "variant": variant,
        "k": k,
        "seconds": seconds,
        "cpu": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
        "load": load,
        "cores": _cores(),
        "bytes": sum(p.stat().st_size for p in paths),
        "peak_above_baseline": peak - baseline,
        "baseline": baseline,
        "hwm_reset": reset,
        "digest": digest,
        "algorithm": digests[0].partition(":")[0] if digests else "",
    }


# ------------------------------------------------------------------ the driver


def _write_files(
    directory: Path,
    k: int,
    params: int,
    tensors: int,
    seed: int,
    algorithm: str = "blake3-blocks",
    dtype: str = "f32",
) -> int:
    from fl_gitops.tensors import narrow, serialize, sha256_digest

    def cast(a: np.ndarray) -> np.ndarray:
        """The float32 values in ``dtype`` (the same draws whatever the dtype)."""
        if dtype == "f16":
            return a.astype(np.float16)
        if dtype == "bf16":
            return narrow(a)
        return a

    sizes = [params // tensors] * tensors
    sizes[-1] += params - sum(sizes)
    rng = np.random.default_rng(seed)
    base = {
        f"layer{i}.weight": rng.standard_normal(s, dtype=np.float32) for i, s in enumerate(sizes)
    }
    base_bytes = serialize({n: cast(a) for n, a in base.items()})
    (directory / "base.safetensors").write_bytes(base_bytes)
    base_digest = sha256_digest(base_bytes)
    for i in range(k):
        update = {
            n: cast(a + rng.standard_normal(a.size, dtype=np.float32) * np.float32(0.01))
            for n, a in base.items()
        }
        data = serialize(update)
        del update
        cluster = f"cluster-{i:03d}"
        (directory / f"{cluster}.safetensors").write_bytes(data)
        meta = {
            "round": 1,
            "cluster": cluster,
            "base_model": base_digest,
            "num_examples": 100 + 7 * i,
            "metrics": {},
            "sha256": _named_digest(algorithm, data),
        }
        if algorithm == "blake3-blocks":  # the list the store keeps beside the update
            from fl_gitops.tensors import update_block_list

            (directory / f"{cluster}.blocks").write_bytes(update_block_list(data)[1])
        (directory / f"{cluster}.json").write_text(json.dumps(meta))
        del data
    return len(base_bytes)


def _named_digest(algorithm: str, data: bytes) -> str:
    """``<algorithm>:<hex>`` of an update's bytes, as a cluster names it."""
    from fl_gitops.tensors import new_hasher

    h = new_hasher(algorithm)
    h.update(data)
    return f"{algorithm}:{h.hexdigest()}"


def _evict(directory: Path) -> None:
    for path in directory.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages cannot be dropped: write them out first
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


_AGAINST = "@against"


def _run(
    variant: str, directory: Path, k: int, cold: bool, against: str | None = None
) -> dict[str, Any]:
    if cold:
        _evict(directory)
    env = None
    if variant.endswith(_AGAINST):
        variant = variant.removesuffix(_AGAINST)
        env = dict(os.environ, PYTHONPATH=str(against))
    variant, dtype = _split_dtype(variant)
    if dtype != "f32":
        directory = directory / dtype
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", variant, "--dir", str(directory), "--k", str(k)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    process_seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{proc.stderr}")
    # The whole process too: interpreter start-up and imports, as a user's job pays them.
    return {**json.loads(proc.stdout), "process_seconds": process_seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=32, help="updates for FedAvg (default 32)")
    parser.add_argument(
        "--k-robust", type=int, default=16, help="updates for FedMedian and Krum (default 16)"
    )
    parser.add_argument(
        "--params",
        type=int,
        default=25_000_000,
        help="float32 parameters per model (default 25M: 100 MB)",
    )
    parser.add_argument("--tensors", type=int, default=4, help="tensors per model (default 4)")
    parser.add_argument(
        "--dtype",
        default="f32",
        help="comma-separated dtypes of the models and updates, each written with the same "
        "element count and run in the same plan: f32 (the default), f16, bf16",
    )
    parser.add_argument(
        "--digest",
        choices=["blake3-blocks", "blake3", "sha256"],
        default="blake3-blocks",
        help="the algorithm the updates are named by: blake3-blocks (as clusters report now, "
        "the default, with the block list beside each file), or blake3 or sha256 of the "
        "whole file (as they reported before)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the whole plan this many times, interleaved; report the best and median",
    )
    parser.add_argument(
        "--cache",
        choices=["warm", "cold", "both"],
        default="warm",
        help="warm: read the files from the page cache; cold: evict them before each run; "
        "both: the whole plan warm, then cold (default warm)",
    )
    parser.add_argument("--cold", action="store_true", help="the same as --cache cold")
    parser.add_argument("--dir", help="where to write the files (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    parser.add_argument(
        "--data",
        help="use this directory for the files and keep them; files written by an earlier "
        "run with the same --k, --params and --tensors are reused",
    )
    parser.add_argument("--skip", default="", help="comma-separated variants to skip")
    parser.add_argument(
        "--against",
        help="also run the stream-* variants with fl_gitops imported from this directory "
        "(e.g. a git worktree of the commit before a change), interleaved with this tree's",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.dir), args.k)))
        return 0

    compile_package()
    k_robust = min(args.k_robust, args.k)
    cache = "cold" if args.cold else args.cache
    dtypes = list(dict.fromkeys(d.strip() for d in args.dtype.split(",") if d.strip()))
    unknown = [d for d in dtypes if d not in DTYPES]
    if unknown or not dtypes:
        print(
            f"--dtype: {', '.join(unknown) or 'nothing'}: expected f32, f16 or bf16",
            file=sys.stderr,
        )
        return 2
    manifest = {
        "k": args.k,
        "params": args.params,
        "tensors": args.tensors,
        "seed": 0,
        "digest": args.digest,
    }
    if args.data:
        directory = Path(args.data)
        directory.mkdir(parents=True, exist_ok=True)
        parent = directory
    else:
        parent = Path(args.dir) if args.dir else Path(tempfile.gettempdir())
        parent.mkdir(parents=True, exist_ok=True)
        directory = Path()
    reuse = args.data and _manifest(directory) == manifest
    need = sum(
        0
        if reuse and (d == "f32" or _manifest(directory / d) == {**manifest, "dtype": d})
        else int((args.k + 1) * args.params * DTYPES[d][1] * 1.01) + 64 * 1024 * 1024
        for d in dtypes
    )
    free = shutil.disk_usage(parent).free
    if free < need:
        print(
            f"need {need / 1e9:.1f} GB free in {parent}, have {free / 1e9:.1f} GB: "
            "use --k or --params for a smaller run",
            file=sys.stderr,
        )
        return 2
    if not args.data:
        directory = Path(tempfile.mkdtemp(prefix="fl-bench-", dir=parent))
    try:
        t0 = time.perf_counter()
        sizes: dict[str, int] = {}
        for d in dtypes:
            # float32's files where they always were (an earlier --data is reused), the
            # others in a subdirectory named by the dtype, each with its own manifest.
            where = directory if d == "f32" else directory / d
            want = manifest if d == "f32" else {**manifest, "dtype": d}
            where.mkdir(parents=True, exist_ok=True)
            if args.data and _manifest(where) == want:
                sizes[d] = (where / "base.safetensors").stat().st_size
                action = "reusing"
            else:
                (where / "bench.json").unlink(missing_ok=True)
                sizes[d] = _write_files(
                    where, args.k, args.params, args.tensors, seed=0, algorithm=args.digest,
                    dtype=d,
                )  # fmt: skip
                (where / "bench.json").write_text(json.dumps(want))
                action = f"wrote in {time.perf_counter() - t0:.1f} s"
            print(
                f"{args.k} updates of {sizes[d] / 1e6:.1f} MB "
                f"({args.params:,} {DTYPES[d][0]} in {args.tensors} tensors), {action}, "
                f"in {where}"
            )
        model_bytes = sizes.get("f32", sizes[dtypes[0]] * 4 // DTYPES[dtypes[0]][1])
        print(
            f"page cache: {cache}; "
            f"{_cores()} cores, load average {os.getloadavg()[0]:.2f} before the runs"
        )
        plan = [
            ("floor", args.k),
            ("floor+hash", args.k),
            ("floor+hash-par", args.k),
            ("stream-fedavg", args.k),
            ("stream-fedavg-nobound", args.k),
            ("loadall-fedavg", args.k),
            ("flower-fedavg", args.k),
            ("stream-fedmedian", k_robust),
            ("stream-krum", k_robust),
            ("stream-dp", k_robust),
            ("floor", k_robust),
        ]
        skip = set(filter(None, args.skip.split(",")))
        plan = [(v, k) for v, k in dict.fromkeys(plan) if v not in skip]
        # The other dtypes: the floor and the stream-* variants (load-all and Flower's
        # arithmetic read float32 only), each after float32's, so a busy spell hits both.
        plan = [
            entry
            for v, k in plan
            for entry in (
                ([(v, k)] if "f32" in dtypes else [])
                + [
                    (f"{v}[{d}]", k)
                    for d in dtypes
                    if d != "f32" and (v.startswith("stream-") or v == "floor")
                ]
            )
        ]
        if args.against:
            plan = [
                entry
                for v, k in plan
                for entry in (
                    [(v, k), (v + _AGAINST, k)]
                    if v.startswith("stream-") and "[" not in v
                    else [(v, k)]
                )
            ]
        for mode in ("warm", "cold") if cache == "both" else (cache,):
            # Whole plans back to back, so that a busy spell on the shared machine hits
            # every variant rather than one.
            runs: dict[tuple[str, int], list[dict[str, Any]]] = {key: [] for key in plan}
            for repeat in range(args.repeat):
                for variant, k in _ordered(plan, repeat):
                    runs[(variant, k)].append(
                        _run(variant, directory, k, mode == "cold", args.against)
                    )
            print(
                f"\n== page cache {mode}"
                + (": each file evicted before every run" if mode == "cold" else "")
            )
            _report(runs, model_bytes, args.k, k_robust)
            _report_dtypes(runs, args.params, dtypes)
    finally:
        if not args.keep and not args.data:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


_PAIR = ("stream-fedavg", "stream-fedavg-nobound")


def _ordered(plan: list[tuple[str, int]], repeat: int) -> list[tuple[str, int]]:
    """The plan, with the bound's pair run the other way round on odd repeats (so that
    neither always comes first, after the same variant)."""
    if repeat % 2 == 0:
        return plan
    names = [v for v, _ in plan]
    if not all(v in names for v in _PAIR):
        return plan
    out = list(plan)
    i, j = names.index(_PAIR[0]), names.index(_PAIR[1])
    out[i], out[j] = out[j], out[i]
    return out


def _report_dtypes(
    runs: dict[tuple[str, int], list[dict[str, Any]]], params: int, dtypes: list[str]
) -> None:
    """Each stream variant's best time, CPU and peak per dtype, against float32's."""
    others = [d for d in dtypes if d != "f32"]
    if not others:
        return
    print()
    best = {key: min(rs, key=lambda r: r["seconds"]) for key, rs in runs.items() if rs}
    for (v, kk), r in best.items():
        if "[" in v or not (v.startswith("stream-") or v == "floor"):
            continue
        parts = []
        for d in dtypes:
            x = r if d == "f32" else best.get((f"{v}[{d}]", kk))
            if x is None:
                continue
            part = (
                f"{d} {x['seconds']:.2f} s ({x['seconds'] / r['seconds'] - 1:+.0%}), "
                f"cpu {x['cpu']:.2f} s, peak {x['peak_above_baseline'] / params:.1f} B/element"
            )
            parts.append(part)
        if "f32" not in dtypes:  # no float32 row: the listed dtypes side by side
            parts = [
                f"{d} {x['seconds']:.2f} s, cpu {x['cpu']:.2f} s, "
                f"peak {x['peak_above_baseline'] / params:.1f} B/element"
                for d in dtypes
                if (x := best.get((f"{v}[{d}]", kk))) is not None
            ]
        print(f"{v} (K={kk}, {params:,} elements): " + "; ".join(parts))


def _manifest(directory: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((directory / "bench.json").read_text()))
    except (OSError, ValueError):
        return None


def _report(
    runs: dict[tuple[str, int], list[dict[str, Any]]], model_bytes: int, k: int, k_robust: int
) -> None:
    # The best run of each variant: the least disturbed by other work on the machine.
    results = {key: min(rs, key=lambda r: r["seconds"]) for key, rs in runs.items() if rs}
    print()
    print(
        f"{'variant':<26}{'K':>4}{'best s':>8}{'median s':>10}{'read MB/s':>11}"
        f"{'cpu s':>7}{'load':>6}{'peak MB':>9}{'peak/model':>12}"
    )
    for (variant, kk), r in results.items():
        median = statistics.median(x["seconds"] for x in runs[(variant, kk)])
        mbps = r["bytes"] / r["seconds"] / 1e6
        peak = r["peak_above_baseline"] / 1e6
        print(
            f"{variant:<26}{kk:>4}{r['seconds']:>8.2f}{median:>10.2f}{mbps:>11.0f}"
            f"{r['cpu']:>7.2f}{r['load']:>6.2f}{peak:>9.1f}"
            f"{r['peak_above_baseline'] / model_bytes:>12.2f}"
        )
    print(
        "(best: the fastest of the runs; cpu: user + system seconds of that run; load: the "
        "1-minute load average as it started)"
    )
    if not all(r["hwm_reset"] for r in results.values()):
        print("(VmHWM could not be reset: peaks include the imports' transient memory)")

    def speed(v: str, kk: int = k) -> float | None:
        r = results.get((v, kk))
        return None if r is None else r["bytes"] / r["seconds"]

    print()
    stream, floor = speed("stream-fedavg"), speed("floor")
    floor_h, floor_p = speed("floor+hash"), speed("floor+hash-par")
    loadall = results.get(("loadall-fedavg", k))
    s = results.get(("stream-fedavg", k))
    if stream and floor:
        verdict = "met" if stream / floor >= 0.6 else "NOT met"
        print(
            f"stream-fedavg reads at {stream / floor:.0%} of the floor's speed "
            f"(target >= 60%: {verdict})"
        )
    if stream and floor_h:
        print(f"stream-fedavg reads at {stream / floor_h:.0%} of floor+hash's speed (1 core)")
    if stream and floor_p:
        print(
            f"stream-fedavg reads at {stream / floor_p:.0%} of floor+hash-par's speed "
            "(every core hashing)"
        )
    h = results.get(("floor+hash", k))
    if floor and h:
        # What verification alone allows: the hash on every core, doing nothing else.
        per_core = h["bytes"] / h["cpu"]
        cores = h["cores"]
        bound = min(floor, per_core * cores)
        print(
            f"{h['algorithm']} runs at {per_core / 1e9:.2f} GB/s per CPU second here; "
            f"on {cores} cores "
            f"a verified read can reach at most {bound / 1e9:.2f} GB/s, "
            f"{bound / floor:.0%} of the floor's {floor / 1e9:.2f} GB/s"
            + (
                " (60% of the floor is out of reach with every byte hashed)"
                if bound < 0.6 * floor
                else ""
            )
        )
    flower = results.get(("flower-fedavg", k))
    if s and flower:
        best_process = {
            v: min(r["process_seconds"] for r in runs[(v, k)])
            for v in ("stream-fedavg", "flower-fedavg")
        }
        faster = best_process["flower-fedavg"] / best_process["stream-fedavg"]
        less = flower["peak_above_baseline"] / s["peak_above_baseline"]
        print(
            f"whole processes: stream-fedavg {best_process['stream-fedavg']:.2f} s, Flower's "
            f"aggregate {best_process['flower-fedavg']:.2f} s: {faster:.1f}x faster "
            f"(target >= 8x: {'met' if faster >= 8 else 'NOT met'}); in the call alone "
            f"{flower['seconds'] / s['seconds']:.1f}x"
        )
        print(
            f"stream-fedavg uses {less:.1f}x less peak memory than Flower's aggregate "
            f"(target >= 10x: {'met' if less >= 10 else 'NOT met'})"
        )
    if s and loadall:
        faster = loadall["seconds"] / s["seconds"]
        less = loadall["peak_above_baseline"] / s["peak_above_baseline"]
        print(
            f"stream-fedavg is {faster:.1f}x faster than load-all "
            f"(target >= 4x: {'met' if faster >= 4 else 'NOT met'})"
        )
        print(
            f"stream-fedavg uses {less:.1f}x less peak memory than load-all "
            f"(target >= 8x: {'met' if less >= 8 else 'NOT met'})"
        )
        same = "the same" if loadall["digest"] == s["digest"] else "a different"
        print(f"load-all's float32 average gives {same} digest as streaming's float64 one")
    if s:
        print(
            f"stream-fedavg's peak is {s['peak_above_baseline'] / model_bytes:.2f}x the model "
            f"above the baseline (target < 3x: "
            f"{'met' if s['peak_above_baseline'] < 3 * model_bytes else 'NOT met'})"
        )
    # Each dtype's pair (rows ``name[f16]`` for another dtype than float32).
    for suffix in sorted(
        {v[len("stream-fedavg") :] for v, _ in runs if v.startswith("stream-fedavg")}
    ):
        if suffix.startswith("-nobound") or _AGAINST in suffix:
            continue
        on_key, off_key = ("stream-fedavg" + suffix, k), ("stream-fedavg-nobound" + suffix, k)
        if on_key not in results or off_key not in results:
            continue
        # The two run back to back in every repeat of the plan: run i of one and run i of
        # the other met the same disturbances, so the median of their ratios is the figure
        # least moved by other work on the machine (the best times are shown too).
        on, off = runs[on_key], runs[off_key]
        paired = (
            statistics.median(a["seconds"] / b["seconds"] for a, b in zip(on, off, strict=True)) - 1
        )
        cpu = min(x["cpu"] for x in on) / min(x["cpu"] for x in off) - 1
        bound, free = results[on_key], results[off_key]
        best = bound["seconds"] / free["seconds"] - 1
        same = "the same digest" if bound["digest"] == free["digest"] else "DIFFERENT digests"
        print(
            f"the distance bound and the hub's digests cost {paired:+.1%} of "
            f"stream-fedavg{suffix}'s time (median of {len(on)} back-to-back pairs; best "
            f"{bound['seconds']:.2f} s vs {free['seconds']:.2f} s, {best:+.1%}; least cpu "
            f"{cpu:+.1%}; target <= +10%: {'met' if paired <= 0.10 else 'NOT met'}); {same}"
        )
    for (v, kk), r in results.items():
        other = results.get((v + _AGAINST, kk))
        if other:
            same = "the same digest" if other["digest"] == r["digest"] else "DIFFERENT digests"
            print(
                f"{v} (K={kk}): best {r['seconds']:.2f} s here, {other['seconds']:.2f} s "
                f"against ({r['seconds'] / other['seconds']:.0%}); cpu {r['cpu']:.2f} s vs "
                f"{other['cpu']:.2f} s; peak {r['peak_above_baseline'] / model_bytes:.2f}x vs "
                f"{other['peak_above_baseline'] / model_bytes:.2f}x the model; {same}"
            )
    for v in ("stream-fedmedian", "stream-krum", "stream-dp"):
        r = results.get((v, k_robust))
        fl = speed("floor", k_robust)
        if r and fl:
            print(
                f"{v} (K={k_robust}): {r['seconds']:.2f} s, "
                f"{r['peak_above_baseline'] / model_bytes:.2f}x the model above baseline, "
                f"{r['bytes'] / r['seconds'] / fl:.0%} of the floor's speed"
            )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

"""Benchmark streaming aggregation against reading the files once and against load-all.

    python bench/aggregate.py                     # K=32 updates of a 25M-parameter model
    python bench/aggregate.py --k 8 --params 4000000   # a quick run

Writes K float32 updates (``--params`` parameters in ``--tensors`` tensors, ~100 MB each at
25M) and a base model as safetensors files in a temporary directory (3.3 GB at the defaults;
free space is checked first), then runs each variant in a fresh subprocess and reports its
wall time and its peak resident memory above the interpreter's baseline (VmHWM after the
work minus VmRSS after the imports; the high-water mark is reset before the work where the
kernel allows it):

- ``floor``: read every update file once, in 8 MB chunks, doing nothing else;
- ``floor+sha256``: the same, hashing the bytes (the least a verified read can cost);
- ``stream-fedavg``: ``aggregate_round(strategy="fedavg")``: digest, NaN/Inf and shape
  checks and the weighted mean, one update at a time;
- ``loadall-fedavg``: read and verify every file, load them all with
  ``safetensors.numpy.load``, then average tensor by tensor over the stacked updates (the
  way frameworks that keep every update in memory do it);
- ``stream-fedmedian`` and ``stream-krum`` over the first ``--k-robust`` (16) updates.

Files are read from the page cache (they were just written) unless ``--cold``, which evicts
each file with ``posix_fadvise(DONTNEED)`` before every variant so that reads hit the disk.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
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


def _floor(paths: list[Path], hashed: bool) -> None:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    for path in paths:
        h = hashlib.sha256() if hashed else None
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(view):
                if h is not None:
                    h.update(view[:n])


def _loadall(directory: Path, updates: list[tuple[str, Path, dict[str, Any]]]) -> str:
    import safetensors.numpy

    from fl_gitops.fl.tensors import serialize

    models = []
    weights = []
    for cluster, path, meta in updates:
        data = path.read_bytes()
        if "sha256:" + hashlib.sha256(data).hexdigest() != meta["sha256"]:
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


def worker(variant: str, directory: Path, k: int) -> dict[str, Any]:
    from fl_gitops.fl.aggregate import aggregate_round

    updates = _updates(directory, k)
    paths = [p for _, p, _ in updates]
    base = directory / "base.safetensors"
    baseline = _status("VmRSS")
    reset = _reset_peak()
    start = time.perf_counter()
    digest = None
    if variant == "floor":
        _floor(paths, hashed=False)
    elif variant == "floor+sha256":
        _floor(paths, hashed=True)
    elif variant == "loadall-fedavg":
        digest = _loadall(directory, updates)
    else:
        strategy = {
            "stream-fedavg": "fedavg",
            "stream-fedmedian": "fedmedian",
            "stream-krum": "krum",
        }[variant]
        options = {"f": 1} if strategy == "krum" else {}
        result = aggregate_round(base, updates, strategy=strategy, options=options, round=1)
        if result.rejected:
            raise SystemExit(f"unexpected rejections: {result.rejected}")
        digest = result.digest
    seconds = time.perf_counter() - start
    peak = _status("VmHWM")
    return {
        "variant": variant,
        "k": k,
        "seconds": seconds,
        "bytes": sum(p.stat().st_size for p in paths),
        "peak_above_baseline": peak - baseline,
        "baseline": baseline,
        "hwm_reset": reset,
        "digest": digest,
    }


# ------------------------------------------------------------------ the driver


def _write_files(directory: Path, k: int, params: int, tensors: int, seed: int) -> int:
    from fl_gitops.fl.store import sha256_digest
    from fl_gitops.fl.tensors import serialize

    sizes = [params // tensors] * tensors
    sizes[-1] += params - sum(sizes)
    rng = np.random.default_rng(seed)
    base = {
        f"layer{i}.weight": rng.standard_normal(s, dtype=np.float32) for i, s in enumerate(sizes)
    }
    base_bytes = serialize(base)
    (directory / "base.safetensors").write_bytes(base_bytes)
    base_digest = sha256_digest(base_bytes)
    for i in range(k):
        update = {
            n: a + rng.standard_normal(a.size, dtype=np.float32) * np.float32(0.01)
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
            "sha256": sha256_digest(data),
        }
        (directory / f"{cluster}.json").write_text(json.dumps(meta))
        del data
    return len(base_bytes)


def _evict(directory: Path) -> None:
    for path in directory.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages cannot be dropped: write them out first
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _run(variant: str, directory: Path, k: int, cold: bool) -> dict[str, Any]:
    if cold:
        _evict(directory)
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", variant, "--dir", str(directory), "--k", str(k)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


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
        "--repeat", type=int, default=1, help="run each variant this many times; report the fastest"
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="evict the files from the page cache before each variant",
    )
    parser.add_argument("--dir", help="where to write the files (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    parser.add_argument("--skip", default="", help="comma-separated variants to skip")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.dir), args.k)))
        return 0

    k_robust = min(args.k_robust, args.k)
    need = int((args.k + 1) * args.params * 4 * 1.01) + 64 * 1024 * 1024
    parent = Path(args.dir) if args.dir else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(parent).free
    if free < need:
        print(
            f"need {need / 1e9:.1f} GB free in {parent}, have {free / 1e9:.1f} GB: "
            "use --k or --params for a smaller run",
            file=sys.stderr,
        )
        return 2
    directory = Path(tempfile.mkdtemp(prefix="fl-bench-", dir=parent))
    try:
        t0 = time.perf_counter()
        model_bytes = _write_files(directory, args.k, args.params, args.tensors, seed=0)
        print(
            f"wrote {args.k} updates of {model_bytes / 1e6:.1f} MB "
            f"({args.params:,} float32 in {args.tensors} tensors) in "
            f"{time.perf_counter() - t0:.1f} s to {directory}"
            f"{' (cold: evicted before each run)' if args.cold else ' (page cache warm)'}"
        )
        plan = [
            ("floor", args.k),
            ("floor+sha256", args.k),
            ("stream-fedavg", args.k),
            ("loadall-fedavg", args.k),
            ("stream-fedmedian", k_robust),
            ("stream-krum", k_robust),
            ("floor", k_robust),
        ]
        skip = set(filter(None, args.skip.split(",")))
        results: dict[tuple[str, int], dict[str, Any]] = {}
        for variant, k in plan:
            if variant in skip or (variant, k) in results:
                continue
            runs = [_run(variant, directory, k, args.cold) for _ in range(args.repeat)]
            results[(variant, k)] = min(runs, key=lambda r: r["seconds"])
        _report(results, model_bytes, args.k, k_robust)
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


def _report(
    results: dict[tuple[str, int], dict[str, Any]], model_bytes: int, k: int, k_robust: int
) -> None:
    print()
    print(f"{'variant':<18}{'K':>4}{'time s':>9}{'read MB/s':>11}{'peak MB':>10}{'peak/model':>12}")
    for (variant, kk), r in results.items():
        mbps = r["bytes"] / r["seconds"] / 1e6
        peak = r["peak_above_baseline"] / 1e6
        print(
            f"{variant:<18}{kk:>4}{r['seconds']:>9.2f}{mbps:>11.0f}{peak:>10.1f}"
            f"{r['peak_above_baseline'] / model_bytes:>12.2f}"
        )
    if not all(r["hwm_reset"] for r in results.values()):
        print("(VmHWM could not be reset: peaks include the imports' transient memory)")

    def speed(v: str, kk: int = k) -> float | None:
        r = results.get((v, kk))
        return None if r is None else r["bytes"] / r["seconds"]

    print()
    stream, floor, floor_h = speed("stream-fedavg"), speed("floor"), speed("floor+sha256")
    loadall = results.get(("loadall-fedavg", k))
    s = results.get(("stream-fedavg", k))
    if stream and floor:
        print(f"stream-fedavg reads at {stream / floor:.0%} of the floor's speed (target >= 60%)")
    if stream and floor_h:
        print(f"stream-fedavg reads at {stream / floor_h:.0%} of floor+sha256's speed")
    if s and loadall:
        print(
            f"stream-fedavg is {loadall['seconds'] / s['seconds']:.1f}x faster than "
            f"load-all (target >= 4x)"
        )
        print(
            f"stream-fedavg uses {loadall['peak_above_baseline'] / s['peak_above_baseline']:.1f}"
            f"x less peak memory than load-all (target >= 8x)"
        )
        same = "the same" if loadall["digest"] == s["digest"] else "a different"
        print(f"load-all's float32 average gives {same} digest as streaming's float64 one")
    for v in ("stream-fedmedian", "stream-krum"):
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

"""The shards' entrypoint over the store: ``fl-gitops aggregate --inputs URI --inputs-digest
sha256:... --shard auto/N --out URI``, as the hub's Indexed Job runs it.

Real parts: the CLI as subprocesses, the model store on moto's S3 server (the shared
``s3_store`` fixture) and on local files, the inputs document the reconcile pass writes
(``collect_inputs``). The shards' files are written, polled and listed in the bucket; the
merge reads them from there: one pod's bytes. An inputs document changed in the store is
refused naming both digests; ``auto/N`` takes I from ``JOB_COMPLETION_INDEX``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fl_gitops.aggregate import aggregate_from_store, merge_shards
from fl_gitops.aggregate._inputs import collect_inputs, inputs_name
from fl_gitops.aggregate.checks import Limits
from fl_gitops.reports import HubReport
from fl_gitops.store import OPTIONS_FILE_ENV, ModelStore
from fl_gitops.tensors import serialize

OPTIONS = {"fedavg": {}, "dp-fixed-clipping": {"clipping_norm": 100.0}}


def put_round(store: ModelStore) -> tuple[str, dict[str, HubReport]]:
    """Round 1 in the store: six updates, one far (x1e30), one reported with another
    digest, and a seventh cluster that reported nothing."""
    rng = np.random.default_rng(3)
    shapes = {"a.weight": (300, 40), "b.bias": (40,), "c.weight": (40, 500)}
    base = store.put_model(
        serialize({n: rng.normal(size=s).astype(np.float32) for n, s in shapes.items()})
    )
    reported = {}
    for k in range(6):
        tensors = {n: rng.normal(size=s).astype(np.float32) for n, s in shapes.items()}
        if k == 5:
            tensors["a.weight"] *= 1e30
        meta = {"base_model": base, "num_examples": 10 + k, "metrics": {"acc": 0.5 + k / 100}}
        record = store.put_update(1, f"c{k}", serialize(tensors), meta)
        digest = "sha256:" + "0" * 64 if k == 3 else record["sha256"]
        reported[f"c{k}"] = HubReport(digest, 10 + k, {"acc": 0.5 + k / 100})
    return base, reported


def write_inputs(store: ModelStore, strategy: str) -> tuple[str, str, str]:
    """The pass's inputs document in the store: (its URI, its digest, the base digest)."""
    base, reported = put_round(store)
    inputs = collect_inputs(
        store, 1, base, strategy=strategy, options=OPTIONS[strategy], roster=None,
        limits=Limits(), seed=7, clusters=[*reported, "c6"], reported=reported,
    )  # fmt: skip
    uri = store.put_aggregation_file(1, inputs_name(inputs.digest), inputs.to_bytes())
    return uri, inputs.digest, base


def shard_command(uri: str, digest: str, of: int, out: str) -> list[str]:
    return [
        sys.executable, "-m", "fl_gitops.cli", "aggregate", "--inputs", uri,
        "--inputs-digest", digest, "--shard", f"auto/{of}", "--out", out, "--wait", "60",
    ]  # fmt: skip


def run_shards(uri: str, digest: str, of: int, out: str) -> None:
    """N shards side by side, each told its index as an Indexed Job's pod is."""
    procs = [
        subprocess.Popen(
            shard_command(uri, digest, of, out),
            env={**os.environ, "JOB_COMPLETION_INDEX": str(i)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(of)
    ]
    for i, proc in enumerate(procs):
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        assert stderr.endswith(f"shard {i}/{of}: done\n")
        assert stdout == f"{out}/shard-{i:04d}-of-{of:04d}.decision.json\n"


@pytest.fixture
def s3(s3_store: ModelStore, s3_endpoint: str, tmp_path: Path, monkeypatch) -> ModelStore:
    """The S3 store, its options in the mounted-file form a shard pod reads them in."""
    options = tmp_path / "store-options.json"
    options.write_text(json.dumps({"endpoint_url": s3_endpoint}))
    monkeypatch.setenv(OPTIONS_FILE_ENV, str(options))
    return s3_store


@pytest.mark.parametrize("strategy", ["fedavg", "dp-fixed-clipping"])
def test_shards_in_an_s3_bucket_give_one_pods_bytes(s3, strategy):
    uri, digest, base = write_inputs(s3, strategy)
    assert uri.startswith("s3://") and uri.endswith(f"inputs-{digest[7:]}.json")
    out = s3.aggregation_uri(1, "shards")
    run_shards(uri, digest, 3, out)
    # The shards' files are in the bucket, nowhere else.
    names = sorted(p.rsplit("/", 1)[-1] for p in s3.fs.ls(out.removeprefix("s3://")))
    assert [n for n in names if n.endswith(".decision.json")] == [
        f"shard-{i:04d}-of-0003.decision.json" for i in range(3)
    ]
    merged = merge_shards([out])
    inputs_reported = {
        c: HubReport(r["digest"], r["num_examples"], r["metrics"])
        for c, r in (
            (item["cluster"], item)
            for item in json.loads(s3.fs.cat_file(uri.removeprefix("s3://")))["candidates"]
        )
    }
    pod = aggregate_from_store(
        s3, 1, base, strategy=strategy, options=OPTIONS[strategy], limits=Limits(), seed=7,
        clusters=[*inputs_reported, "c6"], reported=inputs_reported,
    )  # fmt: skip
    assert merged.digest == pod.digest
    assert merged.model == pod.model
    assert merged.contributors == pod.contributors
    assert merged.weights == pod.weights
    assert merged.rejected == pod.rejected
    assert merged.metrics == pod.metrics
    assert sorted(merged.rejected) == ["c3", "c5", "c6"]
    assert merged.rejected["c6"].endswith("no result reported through the hub")


def test_the_merge_command_reads_a_shard_dir_in_the_bucket(s3, tmp_path):
    uri, digest, _ = write_inputs(s3, "fedavg")
    out = s3.aggregation_uri(1, "shards")
    run_shards(uri, digest, 2, out)
    proc = subprocess.run(
        [sys.executable, "-m", "fl_gitops.cli", "aggregate", "--merge", out,
         "--out", str(tmp_path / "model.safetensors")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == merge_shards([out]).digest
    assert "rejected c3: " in proc.stderr


def test_an_inputs_document_changed_in_the_store_is_refused_naming_both_digests(tmp_path):
    store = ModelStore.open(str(tmp_path / "store"))
    uri, digest, _ = write_inputs(store, "fedavg")
    path = Path(uri.removeprefix("file://"))
    doc = json.loads(path.read_bytes())
    doc["candidates"][0]["num_examples"] = 10_000_000  # one cluster's weight, raised
    forged = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    path.write_bytes(forged)
    actual = "sha256:" + hashlib.sha256(forged).hexdigest()
    proc = subprocess.run(
        shard_command(uri, digest, 2, str(tmp_path / "shards")),
        env={**os.environ, "JOB_COMPLETION_INDEX": "0"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        f"error: --inputs {uri}: its bytes hash to {actual}, not to --inputs-digest {digest}: "
        "refused (changed in the store since the reconcile pass wrote it)\n"
    )
    assert not (tmp_path / "shards").exists() or not list((tmp_path / "shards").iterdir())


@pytest.mark.parametrize(
    ("index", "message"),
    [
        (None, "--shard auto/3: JOB_COMPLETION_INDEX is not set (an Indexed Job sets it in "
               "each pod; by hand, give I/N)"),
        ("3", "--shard auto/3: JOB_COMPLETION_INDEX must be an integer 0 to 2"),
        ("x", "--shard auto/3: JOB_COMPLETION_INDEX must be an integer 0 to 2"),
    ],
)  # fmt: skip
def test_auto_takes_the_index_from_the_job_and_refuses_none_or_one_out_of_range(
    tmp_path, index, message
):
    store = ModelStore.open(str(tmp_path / "store"))
    uri, digest, _ = write_inputs(store, "fedavg")
    env = {k: v for k, v in os.environ.items() if k != "JOB_COMPLETION_INDEX"}
    if index is not None:
        env["JOB_COMPLETION_INDEX"] = index
    proc = subprocess.run(
        shard_command(uri, digest, 3, str(tmp_path / "shards")),
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (proc.returncode, proc.stderr) == (2, f"error: {message}\n")


def test_inputs_flags_are_refused_alone_or_beside_the_rounds_flags(tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fl_gitops.cli", "aggregate", *args, "--out", str(tmp_path)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    digest = "sha256:" + "a" * 64
    assert run("--inputs", "x.json").stderr == (
        "error: --inputs x.json: needs --inputs-digest sha256:<hex>\n"
    )
    assert run("--inputs-digest", digest).stderr == (
        "error: --inputs-digest: only with --inputs URI\n"
    )
    proc = run("--inputs", "x.json", "--inputs-digest", digest, "--round", "1", "--shard", "0/2")
    assert (proc.returncode, proc.stderr) == (
        2,
        "error: --inputs: --round not used (the inputs document holds the round); drop them\n",
    )

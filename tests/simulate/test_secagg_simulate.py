"""Secure aggregation in `fl-gitops simulate`: real keys, shares and masks in each cluster's
Jobs, the reconcile pass unmasking only the sum.

The secure run's first round is the plain run's first round (same fleet, same seeds, same
round-0 model: the same clear updates), so its model must be the plain FedAvg model within
the quantisation error of docs/privacy.md. A run with --fail-rate and stragglers drops
clusters between the phases, and every round either recovers or fails cleanly.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import yaml

from fl_gitops.cli import main
from fl_gitops.secagg import SecAggParams
from fl_gitops.tensors import load_bytes

REPO = Path(__file__).resolve().parents[2]
STOCK = REPO / "blueprints" / "digits-fedavg.yaml"
PATH = "experiments/digits-fedavg"
SECURE = "    secureAggregation: {threshold: 4, neighbours: 4, clipRange: 1.0}\n"


def _blueprint(tmp: Path, *, secure: str, name: str) -> Path:
    text = STOCK.read_text()
    text = text.replace("epochs: 5", "epochs: 1")
    text = text.replace("minClusters: 8 ", "minClusters: 4 ")
    text = text.replace("numberOfClusters: 10", "numberOfClusters: 6")
    text = text.replace("    timeout: 30m\n", "    timeout: 30m\n    retries: 2\n")
    text = text.replace("    options: {}\n", "    options: {}\n" + secure)
    path = tmp / f"{name}.yaml"
    path.write_text(text)
    return path


def _show(work: Path, rel: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(work / "config-repo.git"), "show", f"main:{PATH}/{rel}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _simulate(tmp: Path, name: str, *extra: str, secure: str = SECURE, code: int = 0) -> dict:
    work = tmp / name
    args = ["simulate", str(_blueprint(tmp, secure=secure, name=name)), "--clusters", "6"]
    assert main([*args, "--workdir", str(work), "--jobs", "2", *extra]) == code
    return json.loads((work / "report.json").read_text())


def test_the_secure_model_is_plain_fedavg_within_the_quantisation_error(tmp_path):
    secure = _simulate(tmp_path, "secure", "--rounds", "1")
    plain = _simulate(tmp_path, "plain", "--rounds", "1", secure="")
    assert (secure["phase"], plain["phase"]) == ("Completed", "Completed")
    record = yaml.safe_load(_show(tmp_path / "secure", ".history/round-1.yaml"))
    account = record["secureAggregation"]
    assert (account["u1"], account["u2"], account["dropped"]) == (6, 6, 0)
    params = SecAggParams(threshold=4, neighbours=4, clip_range=1.0)
    assert account["levels"] == params.levels(6, 10_000_000)
    a = load_bytes(Path(secure["final_model_path"]).read_bytes())
    b = load_bytes(Path(plain["final_model_path"]).read_bytes())
    assert sorted(a) == sorted(b)
    bound = params.error_bound(account["levels"])
    for name in sorted(a):
        slack = bound + 2 * np.spacing(np.abs(b[name]).astype(np.float32))
        gap = np.abs(a[name].astype(np.float64) - b[name].astype(np.float64))
        assert np.all(gap <= slack), name
    # What the round record says: counts and parameters, the masked inputs' digests,
    # and no update in the clear.
    assert record["updates"] == {}
    assert sorted(account) == [
        "bits",
        "clipRange",
        "dropped",
        "errorBound",
        "levels",
        "maskedInputs",
        "neighbours",
        "revealed",
        "threshold",
        "u1",
        "u2",
    ]
    # The clusters' secrets stayed on the clusters: nowhere under the hub or the store.
    secrets = sorted((tmp_path / "secure" / "clusters").rglob("*.json"))
    assert len(secrets) == 6
    for path in secrets:
        share_key = json.loads(path.read_text())["shareKey"]
        for tree in ("hub", "store", "config-repo.git"):
            for other in (tmp_path / "secure" / tree).rglob("*"):
                if other.is_file():
                    assert share_key.encode() not in other.read_bytes(), other


def test_dropouts_between_phases_are_recovered_or_fail_the_round_cleanly(tmp_path):
    # Seeded: with --fail-rate 0.1 over four Jobs a round and a straggler, clusters drop
    # in every phase; each round recovers, or is retried with fresh secrets.
    secure = "    secureAggregation: {threshold: 3, neighbours: 4, clipRange: 1.0}\n"
    report = _simulate(
        tmp_path, "faults", "--rounds", "3", "--fail-rate", "0.1", "--stragglers", "1",
        "--straggler-delay", "10", "--seed", "1", secure=secure,
    )  # fmt: skip
    assert report["phase"] == "Completed" and len(report["rounds"]) == 3
    work = tmp_path / "faults"
    log = subprocess.run(
        ["git", "--git-dir", str(work / "config-repo.git"), "log", "--format=%s%n%b", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    dropped = 0
    for row in report["rounds"]:
        record = yaml.safe_load(_show(work, f".history/round-{row['round']}.yaml"))
        account = record["secureAggregation"]
        assert account["u2"] >= 3 and account["u1"] == account["u2"] + account["dropped"]
        assert record["contributors"] == sorted(account["maskedInputs"])
        assert sorted(record["failed"]) == sorted(
            set(record["roster"]) - set(record["contributors"])
        )
        dropped += account["dropped"]
    assert dropped > 0  # clusters dropped after sharing, and their rounds recovered
    # A round whose reveal fell short of a secret's threshold was retried, unmasking nothing.
    assert "round 2 retry (attempt 2)" in log
    assert "; nothing unmasked" in log

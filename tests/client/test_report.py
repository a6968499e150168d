"""The Job reports its update through the hub, or fails: never an update without a report.

(The real ConfigMap patch, with a real ServiceAccount token, is in
tests/apiserver/test_result_channel.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fl_gitops.client.report import write_report
from fl_gitops.errors import FlGitopsError
from fl_gitops.models import initial_model_bytes
from fl_gitops.reports import parse_report, report_data
from fl_gitops.store import ModelStore

DIGEST = "sha256:" + "c4" * 32
MODEL = {"builtin": "logreg", "args": {}, "seed": 0}
DATA = {"builtin": "digits", "args": {}, "partition": {"kind": "iid", "seed": 1}}


def _config(store_uri: str, digest: str) -> dict:
    return {
        "apiVersion": "fl-gitops.io/v1alpha1",
        "kind": "RoundConfig",
        "experiment": "digits-small",
        "round": 1,
        "cluster": "cluster-003",
        "rosterIndex": 0,
        "rosterSize": 4,
        "store": {"uri": store_uri},
        "globalModel": {"digest": digest},
        "model": MODEL,
        "data": DATA,
        "train": {"epochs": 1, "batchSize": 32, "optimizer": {"name": "sgd", "lr": 0.1}},
        "strategy": {"name": "fedavg", "options": {}},
    }


def test_a_job_with_nowhere_to_report_fails_after_storing_its_update(tmp_path: Path) -> None:
    store = ModelStore.open(f"file://{tmp_path / 'store'}")
    digest = store.put_model(initial_model_bytes(MODEL, DATA))
    config = tmp_path / "round.json"
    config.write_text(json.dumps(_config(store.uri, digest)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FL_")}
    proc = subprocess.run(
        [sys.executable, "-m", "fl_gitops.cli", "client", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: no result ConfigMap to report to: FL_RESULT_CONFIGMAP is not set "
        "(the rendered Job sets it to <namespace>/<name>)"
    )
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_the_result_file_holds_what_the_hub_would_parse(tmp_path: Path) -> None:
    data = report_data(DIGEST, 12, {"train_loss": 0.5})
    path = tmp_path / "result.json"
    assert write_report(data, environ={"FL_RESULT_FILE": str(path)}) == f"result file {path}"
    assert parse_report(json.loads(path.read_text())).num_examples == 12
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary left


def test_a_result_file_that_cannot_be_written_fails_saying_which(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    path = tmp_path / "a-file" / "result.json"
    with pytest.raises(FlGitopsError) as caught:
        write_report(report_data(DIGEST, 1, {}), environ={"FL_RESULT_FILE": str(path)})
    assert str(caught.value) == (
        "cannot write the result file named by FL_RESULT_FILE: File exists"
    )


@pytest.mark.parametrize("value", ["no-slash", "Bad_NS/name", "ns/", "/name"])
def test_a_result_configmap_that_is_not_namespace_slash_name_is_refused(value: str) -> None:
    with pytest.raises(FlGitopsError) as caught:
        write_report(report_data(DIGEST, 1, {}), environ={"FL_RESULT_CONFIGMAP": value})
    assert str(caught.value) == ("FL_RESULT_CONFIGMAP: expected <namespace>/<name> of a ConfigMap")


def test_without_an_api_server_in_the_environment_the_report_fails(tmp_path: Path) -> None:
    with pytest.raises(FlGitopsError) as caught:
        write_report(
            report_data(DIGEST, 1, {}),
            environ={"FL_RESULT_CONFIGMAP": "fl-gitops/fl-x-r1-result"},
            service_account_dir=tmp_path,
        )
    assert str(caught.value) == (
        "cannot report to ConfigMap fl-gitops/fl-x-r1-result: no in-cluster config (Service "
        "host/port is not set.); the Job needs its ServiceAccount token "
        "(automountServiceAccountToken: true)"
    )

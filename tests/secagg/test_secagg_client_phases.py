"""A cluster's secure-aggregation Jobs (``client/secure.py``) with their own secret files
and a real store, without training: what each keeps, and what each refuses.

A round's mask key and seed are spent by the Job that masks with them (a second run finds
none: no input is masked twice); a reveal is made for one survivor set only (a second
for another could give out both secrets of one cluster); a cluster whose secret was
replaced cannot take part under the key Git holds for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fl_gitops.client.secure import SECRET_FILE_ENV, SecureSection, run_secure_phase, secure_train
from fl_gitops.errors import FlGitopsError
from fl_gitops.secagg import SecAggParams
from fl_gitops.secagg._loop import SecAggRound
from fl_gitops.store import ModelStore

NAMES = ["c-1", "c-2", "c-3", "c-4"]
PARAMS = {"threshold": 3, "neighbours": 3, "clipRange": 1.0, "bits": 64}


def _section(record: SecAggRound, **extra: Any) -> SecureSection:
    doc = record.config_section(SecAggParams(3, 3, 1.0), 1000)
    doc.update(extra)
    return SecureSection.parse(json.loads(json.dumps(doc)), source="round.json")


@pytest.fixture
def shared(tmp_path: Path):
    """Four clusters through keys and share for round 1: the record the train phase gets."""
    store = ModelStore.open(f"file://{tmp_path / 'store'}")
    env = {c: {SECRET_FILE_ENV: str(tmp_path / "clusters" / c / "secret.json")} for c in NAMES}
    record = SecAggRound(1, 1, "keys")
    keys = {c: run_secure_phase("exp", c, _section(record), store, env[c]) for c in NAMES}
    record = SecAggRound(
        1, 1, "share", {c: str(r.share_key) for c, r in keys.items()}, tuple(NAMES)
    )
    shares = {c: run_secure_phase("exp", c, _section(record), store, env[c]) for c in NAMES}
    levels = SecAggParams(3, 3, 1.0).levels(4, 1000)
    record = record.with_(
        phase="train",
        mask_keys={c: str(r.mask_key) for c, r in shares.items()},
        shares={c: str(r.shares) for c, r in shares.items()},
        levels=levels,
    )
    return store, env, record


def _tensors(value: float) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    base = {"w": np.zeros((2, 3), dtype=np.float32)}
    return {"w": base["w"] + np.float32(value)}, base


def test_a_rounds_mask_secrets_are_spent_by_the_job_that_masks(shared):
    store, env, record = shared
    update, base = _tensors(0.25)
    digest, report = secure_train(
        "exp", "c-1", _section(record), store, env["c-1"], update, base, 10
    )
    assert digest.startswith("sha256:") and report.mask_key is not None  # next round's
    with pytest.raises(FlGitopsError, match="mask key is not in the cluster's secret"):
        secure_train("exp", "c-1", _section(record), store, env["c-1"], update, base, 10)


def test_a_reveal_is_made_for_one_survivor_set_only(shared):
    store, env, record = shared
    update, base = _tensors(0.1)
    for cluster in NAMES:
        secure_train(
            "exp", cluster, _section(record, final=True), store, env[cluster], update, base, 10
        )
    reveal = record.with_(phase="reveal")
    first = run_secure_phase("exp", "c-2", _section(reveal, survivors=NAMES), store, env["c-2"])
    assert first.reveal is not None
    again = run_secure_phase("exp", "c-2", _section(reveal, survivors=NAMES), store, env["c-2"])
    assert again.reveal == first.reveal  # the same reveal, made again
    with pytest.raises(FlGitopsError, match="revealed for another set of survivors"):
        run_secure_phase("exp", "c-2", _section(reveal, survivors=NAMES[:3]), store, env["c-2"])


def test_a_replaced_secret_cannot_take_part_under_the_committed_key(shared, tmp_path):
    store, env, record = shared
    Path(env["c-3"][SECRET_FILE_ENV]).unlink()  # the Secret lost, and made again empty
    run_secure_phase("exp", "c-3", _section(SecAggRound(1, 1, "keys")), store, env["c-3"])
    update, base = _tensors(0.1)
    with pytest.raises(FlGitopsError, match="not the one committed for it"):
        secure_train("exp", "c-3", _section(record), store, env["c-3"], update, base, 10)


def test_the_secret_file_is_the_clusters_alone(shared):
    _, env, _ = shared
    path = Path(env["c-4"][SECRET_FILE_ENV])
    assert path.stat().st_mode & 0o777 == 0o600
    held = json.loads(path.read_text())
    assert sorted(held) == ["masks", "revealed", "shareKey"]

"""The budget and the adaptive clip a round starts from, read back from the round records."""

from __future__ import annotations

from pathlib import Path

import yaml

from fl_gitops.reconcile._privacy import Prior, read_prior
from fl_gitops.render import Layout


def _record(exp: Path, n: int, dp: dict | None) -> None:
    path = exp / Layout().history(n)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"round": n, "model": "sha256:" + "0" * 64}
    if dp is not None:
        record["dp"] = dp
    path.write_text(yaml.safe_dump(record))


def test_the_first_round_starts_from_nothing_spent(tmp_path):
    assert read_prior(tmp_path, 1) == Prior()


def test_a_round_starts_from_the_previous_records_accounting_and_next_clip(tmp_path):
    _record(tmp_path, 2, {"accounting": [[1.0, 1.0, 1], [2.0, 0.5, 1]], "nextClipNorm": 0.75})
    assert read_prior(tmp_path, 3) == Prior(runs=((1.0, 1.0, 1), (2.0, 0.5, 1)), next_clip=0.75)


def test_records_written_before_the_accounting_are_counted_from_their_own_noise(tmp_path):
    _record(tmp_path, 1, None)  # a round before DP was turned on: not counted
    _record(tmp_path, 2, {"clipNorm": 1.0, "noiseMultiplier": 1.0})
    _record(tmp_path, 3, {"clipNorm": 1.0, "noiseMultiplier": 1.0})
    _record(tmp_path, 4, {"clipNorm": 1.0, "noiseMultiplier": 2.0, "samplingRate": 0.5})
    assert read_prior(tmp_path, 5) == Prior(runs=((1.0, 1.0, 2), (2.0, 0.5, 1)))


def test_a_missing_or_unreadable_record_gives_nothing_to_start_from(tmp_path):
    assert read_prior(tmp_path, 4) == Prior()
    path = tmp_path / Layout().history(3)
    path.parent.mkdir(parents=True)
    path.write_text("dp: [unclosed\n")
    assert read_prior(tmp_path, 4) == Prior()

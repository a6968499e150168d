"""LocalAgent: what Argo CD would sync, read from the branch it is given."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fl_gitops.gitops import BareRepo, Change
from fl_gitops.simulate import SyncResult
from fl_gitops.simulate._agent import LocalAgent

CONFIG_MAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm, namespace: fl-system}\n"


class Recording:
    """Players that keep what the agent syncs."""

    def __init__(self) -> None:
        self.synced: list[list[dict[str, Any]]] = []

    def sync(self, objects: Sequence[Mapping[str, Any]], *, experiment: str) -> SyncResult:
        self.synced.append([dict(o) for o in objects])
        return SyncResult(applied=[dict(o) for o in objects])

    @contextlib.contextmanager
    def batch(self) -> Iterator[Recording]:
        yield self


def test_the_agent_syncs_the_kustomization_of_the_branch_it_is_given(tmp_path: Path):
    remote = tmp_path / "remote.git"
    BareRepo.create(
        remote,
        branch="trunk",
        files={
            "experiments/x/kustomization.yaml": b"resources: [hub/cm.yaml]\n",
            "experiments/x/hub/cm.yaml": CONFIG_MAP.encode(),
        },
        change=Change(message="add experiment x"),
        user_name="t",
        user_email="t@t",
    )
    players = Recording()
    agent = LocalAgent(
        players,  # type: ignore[arg-type]
        remote=remote,
        branch="trunk",
        jobs_dir=tmp_path / "jobs",
        path="experiments/x",
        experiment="x",
        base_env={},
    )
    assert agent.sync() == []  # no ManifestWork, so no Job to prepare
    assert players.synced == [
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "cm", "namespace": "fl-system"},
            }
        ]
    ]

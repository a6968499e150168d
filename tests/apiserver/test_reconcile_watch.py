"""`fl-gitops reconcile --watch` on a real hub: a work's status change wakes the next pass.

The reconciler runs as a subprocess, authenticated as the experiment's own ServiceAccount
(a TokenRequest token in a kubeconfig), with a poll interval of ten minutes: a pass that
follows a status write within seconds can only have been woken by the watch.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fl_gitops.cli import main as cli_main
from fl_gitops.devhub import ApiServer
from fl_gitops.labels import EXPERIMENT_LABEL

from ..reconcile.fleet import EXP, PATH
from .hubside import FL_GITOPS, World, delete_objects, make_world

INTERVAL = "600s"
WORKS = ("work.open-cluster-management.io", "v1", "manifestworks")


@pytest.fixture
def world(apiserver: ApiServer, admin: Any, tmp_path: Path, namespace: str) -> Iterator[World]:
    from kubernetes import client as k8s

    world = make_world(tmp_path, admin, apiserver, namespace)
    try:
        yield world
    finally:
        group, version, plural = WORKS
        api = k8s.CustomObjectsApi(admin)
        listed = api.list_cluster_custom_object(
            group, version, plural, label_selector=f"{EXPERIMENT_LABEL}={EXP}"
        )
        for work in listed["items"]:
            meta = work["metadata"]
            api.delete_namespaced_custom_object(
                group, version, meta["namespace"], plural, meta["name"]
            )
        delete_objects(admin, [o for o in world.rbac if "namespace" not in o["metadata"]])


class Reconciler:
    """`fl-gitops reconcile --watch` in a subprocess; its stdout lines with arrival times."""

    def __init__(self, args: list[str], stderr: Path) -> None:
        self._stderr = stderr
        with stderr.open("wb") as err:  # the child writes it; this process only reads it
            self.proc = subprocess.Popen(
                [FL_GITOPS, "reconcile", *args],
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                text=True,
            )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line.rstrip("\n")))

    def next_line(self, timeout: float) -> tuple[float, str]:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no pass line within {timeout:.0f}s; stderr:\n{self.stderr()}"
            ) from None

    def stderr(self) -> str:
        return self._stderr.read_text("utf-8", "replace")

    def interrupt(self) -> int:
        """Ctrl-C, and its exit code."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _args(world: World, apiserver: ApiServer) -> list[str]:
    return [
        "--repo",
        str(world.remote),
        "--path",
        PATH,
        "--workdir",
        str(world.tmp / f"reconciler-{uuid.uuid4().hex[:6]}"),
        "--kubeconfig",
        str(world.kubeconfig(apiserver)),
    ]


def test_a_status_write_wakes_reconcile_watch_long_before_its_interval(
    world: World, apiserver: ApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _args(world, apiserver)
    # round 1 started (as the CronJob's --once would), Argo CD synced it, two Jobs done
    assert cli_main(["reconcile", *args, "--once"]) == 0
    assert capsys.readouterr().out.startswith("StartRound: round 1: 3 clusters placed [main ")
    last = world.clusters[-1]
    assert world.fleet.run_jobs(skip=[last]) == world.clusters[:-1]

    reconciler = Reconciler([*args, "--watch", "--interval", INTERVAL], world.tmp / "err")
    try:
        _, first = reconciler.next_line(60)
        assert first.startswith("Wait: 2 succeeded, 0 failed, 1 still running ("), first
        time.sleep(1.0)  # let it settle into its wait

        assert world.fleet.run_jobs(skip=world.clusters[:-1]) == [last]
        reported = time.monotonic()
        at, line = reconciler.next_line(30)
        assert line.startswith("Aggregate: round 1 aggregated from 3 clusters [main "), line
        woke_after = at - reported
        assert reconciler.interrupt() == 130
    finally:
        reconciler.kill()
    assert reconciler.stderr() == "interrupted\n"
    with capsys.disabled():
        print(
            f"\nreconcile --watch --interval {INTERVAL}: the Aggregate pass printed "
            f"{woke_after:.2f} s after the last Job's status was written (watch wake-up and "
            "a whole pass: fetch, aggregate, render, commit, push)"
        )


def test_after_starting_round_one_reconcile_watch_passes_again_and_wakes_on_the_works(
    world: World, apiserver: ApiServer
) -> None:
    reconciler = Reconciler(
        [*_args(world, apiserver), "--watch", "--interval", INTERVAL], world.tmp / "err"
    )
    try:
        _, first = reconciler.next_line(60)
        assert first.startswith("StartRound: round 1: 3 clusters placed [main "), first
        # a pass that pushed is followed by another at once: it reads the new roster's works
        # (none yet), so the wait after it watches them
        _, second = reconciler.next_line(30)
        assert second.startswith("Wait: 0 succeeded, 0 failed, 3 still running ("), second
        assert world.fleet.run_jobs() == world.clusters  # Argo CD syncs; every Job is done
        deadline = time.monotonic() + 30
        lines = [reconciler.next_line(30)[1]]
        while not lines[-1].startswith("Aggregate: "):
            lines.append(reconciler.next_line(deadline - time.monotonic())[1])
        assert lines[-1].startswith("Aggregate: round 1 aggregated from 3 clusters [main "), lines
        assert all(line.startswith("Wait: ") for line in lines[:-1]), lines
        assert reconciler.interrupt() == 130
    finally:
        reconciler.kill()


def test_a_pass_by_hand_on_the_watchs_own_workdir_runs_while_the_watch_waits(
    world: World, apiserver: ApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _args(world, apiserver)  # one --workdir for both
    reconciler = Reconciler([*args, "--watch", "--interval", INTERVAL], world.tmp / "err")
    try:
        assert reconciler.next_line(60)[1].startswith("StartRound: round 1: ")
        _, waiting = reconciler.next_line(30)
        assert waiting.startswith("Wait: 0 succeeded, 0 failed, 3 still running ("), waiting

        # before, this waited for the lock the watch held for its whole life, then failed
        assert cli_main(["reconcile", *args, "--once"]) == 0
        assert capsys.readouterr().out.startswith("Wait: 0 succeeded, 0 failed, 3 still running")

        # and the watch goes on from the same clone: the round still aggregates
        assert world.fleet.run_jobs() == world.clusters
        deadline = time.monotonic() + 30
        line = reconciler.next_line(30)[1]
        while not line.startswith("Aggregate: "):
            assert line.startswith("Wait: "), line
            line = reconciler.next_line(deadline - time.monotonic())[1]
        assert line.startswith("Aggregate: round 1 aggregated from 3 clusters [main "), line
        assert reconciler.interrupt() == 130
    finally:
        reconciler.kill()
    assert reconciler.stderr() == "interrupted\n"

"""Ctrl-C during an aggregation stops it cleanly: KeyboardInterrupt (exit 130), no thread left.

It once raised "cannot join thread before it is started" (a reader thread recorded before it
started, then joined) and exited 3. Each test interrupts at a deterministic point: inside a
reader thread's start, or by a real SIGINT raised from the summing step.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from fl_gitops.aggregate import _engine, aggregate_round
from fl_gitops.tensors import Lockstep, read_header


def model(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "a": rng.normal(size=(64, 64)).astype(np.float32),
        "b": rng.normal(size=64).astype(np.float32),
    }


@pytest.fixture
def rf(round_files):
    rf = round_files(model(0))
    for k in range(5):
        rf.add(f"c{k}", model(10 + k), num_examples=k + 1)
    return rf


def our_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("fl-gitops"))


def interrupt_the_start_of(monkeypatch, name: str) -> None:
    """Ctrl-C as the thread called ``name`` is being started (before it runs)."""
    real = threading.Thread.start

    def start(self):
        if self.name == name:
            raise KeyboardInterrupt
        real(self)

    monkeypatch.setattr(threading.Thread, "start", start)


def test_ctrl_c_while_a_reader_thread_starts_is_a_keyboard_interrupt(rf, monkeypatch):
    paths = [u.path for u in rf.updates()]
    headers = [read_header(p) for p in paths]
    interrupt_the_start_of(monkeypatch, "fl-gitops-read-2")
    with (
        pytest.raises(KeyboardInterrupt),
        Lockstep(paths, headers, slot_bytes=4096, readers=len(paths)) as lockstep,
    ):
        for _ in lockstep.chunks():
            pass
    assert our_threads() == []


def test_ctrl_c_in_the_middle_of_the_sum_stops_the_round_and_leaves_no_thread(rf, monkeypatch):
    calls = []
    real = _engine.add_weighted

    def add_weighted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGINT)  # the default handler: KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(_engine, "add_weighted", add_weighted)
    with pytest.raises(KeyboardInterrupt):
        aggregate_round(rf.base_path, rf.updates(), strategy="fedavg", round=1, chunk_elements=512)
    assert len(calls) == 3
    assert our_threads() == []
    # And the next round, in the same process, runs as if nothing had happened.
    monkeypatch.setattr(_engine, "add_weighted", real)
    again = aggregate_round(rf.base_path, rf.updates(), strategy="fedavg", round=1)
    assert again.rejected == {}


def test_fl_gitops_aggregate_interrupted_while_starting_a_reader_exits_130(rf, tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, threading
        real = threading.Thread.start
        def start(self):
            if self.name == "fl-gitops-read-1":
                raise KeyboardInterrupt
            real(self)
        threading.Thread.start = start
        from fl_gitops.cli import main
        code = main([
            "aggregate", "--model", {str(rf.base_path)!r}, "--updates", {str(rf.updates_dir)!r},
            "--round", "1", "--strategy", "fedavg", "--out", {str(tmp_path / "new")!r},
        ])
        left = [t.name for t in threading.enumerate() if t.name.startswith("fl-gitops")]
        print(left)
        sys.exit(code)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert (proc.returncode, proc.stderr, proc.stdout) == (130, "interrupted\n", "[]\n")
    assert not (tmp_path / "new").exists()

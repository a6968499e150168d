"""Warm workers that run a Job's own command line, in parallel, without paying for imports.

Importing torch costs 2 to 3 seconds; a fresh process per Job would spend most of a
round starting up. Each worker is forked once, imports fl-gitops, torch and the built-in
data up front, then runs Jobs one after another by calling the same entrypoint the
container would run (`fl-gitops` with the Job's argv), under the Job's environment.

Stopping is the parent's job alone. Workers are forked with SIGINT and SIGTERM blocked
(so none can take a signal before it has set its handlers), then ignore Ctrl-C and die
silently on SIGTERM: no worker prints a traceback, whichever of them the terminal or a
`kill` reaches. The parent, inside ``commands._interrupt.terminate_once``, turns SIGTERM
into an exit with 143 that unwinds like Ctrl-C does (the pool terminated and joined, no
daemon thread left writing at shutdown), so the work dir is left as a resumable run.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import signal
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

__all__ = ["JobOutcome", "JobSpec", "WorkerPool", "job_env", "warm_parent"]

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}

ENTRYPOINT = "fl-gitops"


@dataclass(frozen=True)
class JobSpec:
    """One Job to run: who, and the argv and environment its container would get."""

    cluster: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class JobOutcome:
    """How a Job ended: its exit code and the end of its stderr."""

    cluster: str
    exit_code: int
    stderr: str


def warm_parent() -> None:
    """Import what Jobs need (torch, fl-gitops's client, the digits data) before forking.

    Forked workers then start with it all in memory, shared copy-on-write: no worker pays
    the 2 to 3 seconds of importing torch, and N workers do not hold N copies. Only
    imports happen here; torch starts no threads until it computes, so forking after it
    is safe.
    """
    import fl_gitops.cli
    import fl_gitops.client  # noqa: F401

    try:
        import torch

        from fl_gitops.client.data import builtin_split

        builtin_split({"builtin": "digits", "args": {}})
        # The first optimizer built imports torch._dynamo (over a second); build one here.
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    except Exception:  # warming is an optimisation; a failure shows up in the Job instead
        pass


def _warm() -> None:
    """Per worker: one torch thread (workers already run in parallel), no Ctrl-C.

    Workers ignore Ctrl-C: the parent alone handles it and terminates them, so a Job
    interrupted half-way is never reported (and so never counted) as a failure. SIGTERM
    (the parent's terminate, or a kill of the whole group) ends a worker at once and
    silently, whatever handler it inherited from the parent.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    warm_parent()  # a no-op when the parent already did it
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def _run(spec: JobSpec) -> JobOutcome:
    from fl_gitops.cli import main

    saved = dict(os.environ)
    os.environ.update(dict(spec.env))
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(list(spec.argv[1:]))
            except SystemExit as exc:  # argparse errors
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return JobOutcome(spec.cluster, int(code), err.getvalue()[-2000:])


class WorkerPool:
    """A fixed set of forked, warmed workers; ``run`` spreads Jobs over them.

    A ``ProcessPoolExecutor``, not a ``multiprocessing.Pool``: a worker killed while it
    holds the task queue's lock (SIGTERM to the whole group) makes ``Pool.terminate``
    wait on that lock for ever, where the executor notices the dead worker and lets go.
    """

    def __init__(self, processes: int) -> None:
        context = multiprocessing.get_context("fork")
        self.processes = max(1, processes)
        # Forked with the stop signals blocked: a signal between the fork and _warm's
        # handlers would otherwise raise KeyboardInterrupt in a worker (a traceback). With
        # fork the executor starts every worker on its first task, here, and its manager
        # thread keeps the mask, so the signals go to the main thread.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            self._executor = ProcessPoolExecutor(
                self.processes, mp_context=context, initializer=_warm
            )
            self._executor.submit(_ready).result()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def run(self, jobs: Sequence[JobSpec]) -> list[JobOutcome]:
        """Run every Job; results in the order given."""
        for job in jobs:
            if not job.argv or os.path.basename(job.argv[0]) != ENTRYPOINT:
                raise ValueError(
                    f"{job.cluster}: the Job runs {job.argv[:1]!r}; the simulation runs only "
                    f"the {ENTRYPOINT} entrypoint"
                )
        return list(self._executor.map(_run, jobs))

    def call(self, fn: Any, *args: Any) -> Any:
        """Run one function in a warm worker (keeps torch out of the parent until needed)."""
        return self._executor.submit(fn, *args).result()

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def terminate(self) -> None:
        """Stop now: queued Jobs dropped, running ones killed (never reported)."""
        # The executor has no terminate of its own; its workers are its processes.
        workers = list(getattr(self._executor, "_processes", {}).values())
        for worker in workers:
            with contextlib.suppress(OSError):
                worker.kill()
        self._executor.shutdown(wait=True, cancel_futures=True)
        for worker in workers:
            worker.join()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.terminate()


def _ready() -> bool:
    return True


def job_env(
    base: Mapping[str, str], env: Sequence[Mapping[str, Any]]
) -> tuple[tuple[str, str], ...]:
    """The Job's env list as pairs, over ``base`` (the simulation's own variables)."""
    out = dict(base)
    for item in env:
        if "value" not in item:
            raise ValueError(f"env {item.get('name')!r}: only plain values run in the simulation")
        out[str(item["name"])] = str(item["value"])
    return tuple(sorted(out.items()))

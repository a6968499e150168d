"""How soon `reconcile --watch` reacts to a ManifestWork status write, against polling.

    python bench/watch.py                         # 5 repeats, 3 clusters, a 5 s interval
    python bench/watch.py --repeat 10 --interval 10s

Starts a development hub (kube-apiserver 1.20 and etcd from ``fl_gitops.devhub``) and
places one experiment on it the way tests/apiserver does (tests/reconcile's blueprint, a
bare config remote, a file store, clusters that answer without torch; the rendered RBAC
and a TokenRequest token for the experiment's ServiceAccount). Its reconcile loop runs in
a thread of this process, as that ServiceAccount, the way `fl-gitops reconcile --watch`
runs it: a pass; at once another after a pass that pushed; otherwise a wait.

Each round: Argo CD's sync and every cluster's Job but one report done (updates in the
store, status through the status subresource, as the work agent writes it); once the loop
has seen that and is waiting, the last Job reports after a random delay. The reaction is
the time from sending that status write (the PUT to the status subresource) to the end
of the loop's wait, after which the pass aggregates the round. Two ways of waiting,
interleaved round by round (the first of each pair alternating by repeat, each pair with
the same delay):

- ``watch``: ``KubernetesHub.wait_for_change(interval)`` (watches what the pass listed);
- ``poll``: ``time.sleep(interval)``, the baseline: what `--watch` did before, and what a
  CronJob's schedule does at a coarser grain.

Prints the median and max reaction of each, the median length of the pass that follows,
and the ratio of the medians. A poll reacts in about half its interval on average, whatever
the hub does; the watch's figure is the hub's own latency.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fl_gitops.commands._common import parse_interval  # noqa: E402
from fl_gitops.devhub import ApiServer, crd_objects, find_assets, install_crds  # noqa: E402
from fl_gitops.gitops import ConfigRepo  # noqa: E402
from fl_gitops.hub import KubernetesHub  # noqa: E402
from fl_gitops.reconcile import reconcile_once  # noqa: E402
from tests.apiserver.hubside import World, make_world  # noqa: E402
from tests.reconcile.fleet import PATH  # noqa: E402

MODES = ("watch", "poll")


@dataclass
class Event:
    kind: str  # "pass" or "woke"
    at: float
    action: str = ""
    message: str = ""
    seconds: float = 0.0  # a pass's length


class Loop(threading.Thread):
    """The loop of `reconcile --watch`, waiting as ``mode`` says at each wait."""

    def __init__(self, repo: ConfigRepo, hub: KubernetesHub, interval: float) -> None:
        super().__init__(daemon=True)
        self.repo, self.hub, self.interval = repo, hub, interval
        self.mode = "watch"
        self.events: queue.Queue[Event] = queue.Queue()
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                start = time.monotonic()
                result = reconcile_once(self.repo, self.hub, path=PATH, now=datetime.now(UTC))
                end = time.monotonic()
                name = type(result.action).__name__
                self.events.put(Event("pass", end, name, result.message, end - start))
                if result.publish is not None and result.publish.pushed:
                    continue  # a commit changes what is worth watching: read it at once
                if self.mode == "watch":
                    self.hub.wait_for_change(self.interval)
                else:
                    time.sleep(self.interval)
                self.events.put(Event("woke", time.monotonic()))
        except BaseException as exc:  # reported by the driver
            self.error = exc
            self.events.put(Event("pass", time.monotonic(), "Error", repr(exc)))

    def until(self, predicate: Any, timeout: float) -> list[Event]:
        """Events up to and including the first pass for which ``predicate`` holds."""
        seen: list[Event] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no such pass within {timeout:.0f}s: {seen[-3:]}")
            event = self.events.get(timeout=left)
            seen.append(event)
            if event.action == "Error":
                raise RuntimeError(f"the reconcile loop failed: {event.message}")
            if event.kind == "pass" and predicate(event):
                return seen


class StatusWrites:
    """Wraps the agent's status replace call: when each write was sent, and how long it took."""

    def __init__(self, players: Any) -> None:
        self.sent: list[tuple[float, float]] = []
        api = players._api
        replace = api.replace_namespaced_custom_object_status

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.monotonic()
            try:
                return replace(*args, **kwargs)
            finally:
                self.sent.append((start, time.monotonic() - start))

        api.replace_namespaced_custom_object_status = timed


def one_round(
    world: World, loop: Loop, writes: StatusWrites, mode: str, delay: float
) -> tuple[float, float, float]:
    """One round with the loop waiting as ``mode``: (reaction, the write, the pass) seconds."""
    others, last = world.clusters[:-1], world.clusters[-1]
    loop.mode = mode
    world.fleet.run_jobs(skip=[last])
    waiting = f"{len(others)} succeeded, 0 failed, 1 still running"
    loop.until(
        lambda e: e.action == "Wait" and e.message.startswith(waiting), 4 * loop.interval + 60
    )
    time.sleep(delay)  # the loop is in its wait now
    world.fleet.run_jobs(skip=others)  # the update into the store, then the status write
    sent, took = writes.sent[-1]
    events = loop.until(lambda e: e.action == "Aggregate", 2 * loop.interval + 60)
    woke = [e for e in events if e.kind == "woke"]
    if len(woke) != 1:
        raise RuntimeError(f"{mode}: expected one wake-up before the Aggregate pass: {events}")
    return woke[0].at - sent, took, events[-1].seconds


def _world(tmp: Path, server: ApiServer, admin: Any, clusters: int, rounds: int) -> World:
    from kubernetes import client as k8s

    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    k8s.CoreV1Api(admin).create_namespace({"metadata": {"name": namespace}})
    return make_world(tmp, admin, server, namespace, clusters=clusters, rounds=rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="pairs of rounds (watch, poll)")
    parser.add_argument("--clusters", type=int, default=3)
    parser.add_argument("--interval", default="5s", help="the loop's --interval (default 5s)")
    parser.add_argument("--seed", type=int, default=1, help="seeds the delays before writes")
    args = parser.parse_args()
    interval = parse_interval(args.interval)
    if interval < 1.5:
        parser.error("--interval must be at least 1.5s (the delays before writes need room)")
    rng = random.Random(args.seed)
    assets = find_assets()
    print(
        f"watch vs poll: {args.repeat} x 2 rounds, {args.clusters} clusters, "
        f"--interval {interval:g}s, {assets.folder.name} "
        f"(load {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    reactions: dict[str, list[float]] = {m: [] for m in MODES}
    passes: dict[str, list[float]] = {m: [] for m in MODES}
    with (
        tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp,
        ApiServer(assets) as server,
        server.api_client() as admin,
    ):
        install_crds(admin, crd_objects())
        world = _world(Path(tmp), server, admin, args.clusters, 2 * args.repeat + 1)
        with server.api_client(token=world.token) as client:
            hub = KubernetesHub(client)
            repo = ConfigRepo.open(str(world.remote), branch="main", workdir=Path(tmp) / "w")
            loop = Loop(repo, hub, interval)
            writes = StatusWrites(world.players)
            loop.start()
            loop.until(lambda e: e.action == "StartRound", 120)
            for i in range(args.repeat):
                delay = rng.uniform(0.2, interval - 0.5)
                for mode in MODES if i % 2 == 0 else MODES[::-1]:
                    reaction, took, following = one_round(world, loop, writes, mode, delay)
                    reactions[mode].append(reaction)
                    passes[mode].append(following)
                    print(
                        f"  {mode:5}  delay {delay:4.2f}s  reaction {reaction * 1000:7.1f} ms"
                        f"  (the write {took * 1000:4.1f} ms)  pass {following * 1000:4.0f} ms",
                        flush=True,
                    )
            loop.stopping.set()
            loop.join(timeout=interval + 60)
    print()
    for mode in MODES:
        print(
            f"{mode:5}: reaction median {statistics.median(reactions[mode]) * 1000:8.1f} ms, "
            f"max {max(reactions[mode]) * 1000:8.1f} ms; the pass after it "
            f"{statistics.median(passes[mode]) * 1000:.0f} ms (median)"
        )
    watch, poll = (statistics.median(reactions[m]) for m in MODES)
    print(
        f"watch/poll median reaction: {watch / poll:.4f} (watch reacts {poll / watch:.0f}x sooner; "
        f"its median is {watch / interval:.2%} of the {interval:g}s interval)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

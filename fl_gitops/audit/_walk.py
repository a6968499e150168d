"""The experiment's history walked commit by commit: what each round commit claims, checked.

A round commit (one with the ``FL-*`` trailers the reconcile pass writes) says the same
thing three times: in its trailers, in ``hub/round-state.yaml`` and, when it aggregated a
round, in the round's record ``.history/round-N.yaml``. Walking the commits oldest first,
each claim is compared with the others and with the commit before it: round N's record
starts from the model round N started with, its model is round N+1's base, attempts move
by one on a retry and restart at 1 on a new round, a rollback goes back to a model the
round really started from. A commit without the trailers is a person's edit: shown as
such, and a problem only when it rewrites what only the pass writes (the round records,
the round state once rounds have begun).

The walk reads Git only. What it collects (every model named, each aggregation's
contributors and hub digests, the blueprint each round ran under) is what the store
checks and the re-aggregation then verify.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from fl_gitops.audit._report import Entry
from fl_gitops.audit._values import (
    RoundStateView,
    as_cluster,
    as_count,
    as_digest,
    as_name,
    as_update_digest,
    parse_mapping,
    parse_round_state,
    safe_author,
)
from fl_gitops.errors import FlGitopsError, InputError
from fl_gitops.gitops import ROUND_TRAILER, AuditCommit, round_trailers
from fl_gitops.render import Layout

if TYPE_CHECKING:
    from fl_gitops.blueprint import Blueprint
    from fl_gitops.secagg._loop import SecAggRound

__all__ = ["Aggregation", "History", "Walk", "walk_history"]

_RECORD_RE = re.compile(r"\.history/round-([1-9][0-9]{0,5})\.yaml")
# The round commit's trailer keys, as round_trailers() (their one home) spells them.
_SAMPLE = round_trailers(experiment="e", round_=0, model="m", blueprint="b")
_KEYS = {value: key for key, value in _SAMPLE.items()}
_EXPERIMENT, _ROUND, _MODEL, _BLUEPRINT = _KEYS["e"], ROUND_TRAILER, _KEYS["m"], _KEYS["b"]


class History(Protocol):
    """What the walk reads: ``gitops.HistoryReader``."""

    def commits(self, path: str, *, ref: str = "HEAD") -> list[AuditCommit]: ...

    def read_files(self, sha: str, paths: Sequence[str]) -> list[bytes | None]: ...


@dataclass
class Aggregation:
    """One round's aggregation as the commit that made it records it.

    Attributes:
        round: the round aggregated.
        commit: the commit that wrote its record.
        base: the model the round started from.
        model: the model the round made.
        roster: the clusters the round was run on.
        contributors: the clusters the model was made of, in the record's order.
        candidates: the clusters the strategy chose among (the roster's clusters whose
            Job succeeded and whose update was not rejected); the contributors when the
            record does not say.
        updates: each cluster's update digest as reported through the hub; None when the
            record has no ``updates`` field.
        num_examples: each cluster's reported number of examples, when recorded.
        blueprint: the blueprint at that commit (None if it does not load).
        entry: the report's line for this round, where problems go.
        superseded: a later rollback went back to this round or an earlier one, so the
            store may hold a later attempt's updates of this round, not these.
        dp: the record's ``dp`` block (the clip the round used, with adaptive clipping),
            or None.
        secure: the record's ``secureAggregation`` block (a secure round: ``updates`` then
            holds each survivor's masked input's digest, from ``maskedInputs``), or None.
        secagg: the round's ``secagg.yaml`` as its reveal phase committed it (U2, the
            keys and the grid the unmasking used), or None (the walk said why).
    """

    round: int
    commit: str
    base: str | None
    model: str | None
    roster: tuple[str, ...]
    contributors: tuple[str, ...]
    candidates: tuple[str, ...]
    updates: dict[str, str] | None
    num_examples: dict[str, int]
    blueprint: Blueprint | None
    entry: Entry
    superseded: bool = False
    dp: Mapping[str, Any] | None = None
    secure: Mapping[str, Any] | None = None
    secagg: SecAggRound | None = None


@dataclass
class Walk:
    """What the walk found.

    Attributes:
        entries: the report's lines so far, oldest first.
        aggregations: every aggregation, oldest first.
        models: every model digest named in Git -> the entry that first named it.
        experiment: the experiment's name at the tip ("" if its blueprint does not load).
        blueprint: the blueprint at the tip, if it loads.
    """

    entries: list[Entry] = field(default_factory=list)
    aggregations: list[Aggregation] = field(default_factory=list)
    models: dict[str, Entry] = field(default_factory=dict)
    experiment: str = ""
    blueprint: Blueprint | None = None


def _load_blueprint(name: str, data: bytes) -> Blueprint | None:
    from fl_gitops.blueprint import load_blueprint

    try:
        return load_blueprint(name, text=data)
    except InputError:
        return None


class _Walker:
    def __init__(self, history: History, path: str) -> None:
        self.history = history
        self.path = path.strip("/")
        self.layout = Layout()
        self.walk = Walk()
        self.prev: RoundStateView | None = None
        self.rounds_begun = False
        self.blueprint_seen = False  # the first commit with a blueprint adds it
        self.starts: dict[int, set[str]] = {}  # round -> models it was started from
        self.reveals: dict[int, bytes] = {}  # round -> its reveal phase's secagg.yaml

    def rel(self, repo_path: str) -> str:
        return repo_path[len(self.path) + 1 :] if self.path else repo_path

    def full(self, rel: str) -> str:
        return f"{self.path}/{rel}" if self.path else rel

    def name_model(self, digest: str | None, entry: Entry) -> None:
        if digest is not None:
            self.walk.models.setdefault(digest, entry)

    def run(self) -> Walk:
        commits = self.history.commits(self.path)
        if not commits:
            raise InputError(f"--path {self.path}: no commit in the repository touches it")
        blueprint_file = self.full(self.layout.blueprint)
        (tip_blueprint,) = self.history.read_files(commits[-1].sha, [blueprint_file])
        if tip_blueprint is None:
            raise InputError(
                f"--path {self.path}: no {self.layout.blueprint} there at the tip of the repo"
            )
        for commit in commits:
            self.commit(commit)
        self.walk.blueprint = _load_blueprint(blueprint_file, tip_blueprint)
        self.walk.experiment = self.walk.blueprint.name if self.walk.blueprint else ""
        return self.walk

    # -- one commit -------------------------------------------------------------------

    def commit(self, commit: AuditCommit) -> None:
        rel_paths = [self.rel(p) for p in commit.paths]
        records = sorted(
            int(m.group(1)) for p in rel_paths if (m := _RECORD_RE.fullmatch(p)) is not None
        )
        wanted = [self.full(self.layout.blueprint), self.full(self.layout.round_state)]
        wanted += [self.full(self.layout.secagg)]
        wanted += [self.full(self.layout.history(n)) for n in records]
        blueprint_data, state_data, secagg_data, *record_data = self.history.read_files(
            commit.sha, wanted
        )
        self.note_reveal(secagg_data)
        state = parse_round_state(state_data) if state_data is not None else None
        added = not self.blueprint_seen
        self.blueprint_seen = self.blueprint_seen or blueprint_data is not None
        if _ROUND not in commit.trailers:
            self.edit(commit, rel_paths, records, blueprint_data, state, added=added)
        else:
            present = {n: d for n, d in zip(records, record_data, strict=True) if d is not None}
            removed = [n for n, d in zip(records, record_data, strict=True) if d is None]
            self.round_commit(commit, blueprint_data, state_data, state, present, removed)

    def note_reveal(self, data: bytes | None) -> None:
        """Keep the latest ``secagg.yaml`` of each round's reveal phase: what its
        aggregation unmasked with (a later attempt's replaces an earlier one's)."""
        doc = parse_mapping(data) if data is not None else None
        if doc is None or doc.get("kind") != "SecAggRound" or doc.get("phase") != "reveal":
            return
        number = as_count(doc.get("round"))
        if number is not None and data is not None:
            self.reveals[number] = data

    def reveal_record(
        self, number: int, blueprint: Blueprint | None, entry: Entry
    ) -> SecAggRound | None:
        """A secure round's reveal record, read once for every check that needs it; a
        problem on ``entry`` when there is none to read."""
        from fl_gitops.secagg._loop import SecAggRound

        if blueprint is None or not blueprint.strategy.secure_aggregation:
            entry.problem("a secure round's record, and no secureAggregation in its blueprint")
            return None
        data = self.reveals.get(number)
        doc = parse_mapping(data) if data is not None else None
        if doc is None:
            entry.problem(f"no secagg.yaml of round {number}'s reveal phase in the history")
            return None
        try:
            return SecAggRound.from_json(doc, source=f"secagg.yaml (round {number})")
        except FlGitopsError:
            entry.problem(f"round {number}'s secagg.yaml is not a SecAggRound record")
            return None

    def round_commit(
        self,
        commit: AuditCommit,
        blueprint_data: bytes | None,
        state_data: bytes | None,
        state: RoundStateView | None,
        present: dict[int, bytes],
        removed: list[int],
    ) -> None:
        """A commit with the round trailers: its claims checked, then what it did."""
        self.rounds_begun = True
        # An aggregation belongs to the round it aggregated; other commits to their trailer's.
        round_ = min(present) if present else as_count(commit.trailers.get(_ROUND))
        if round_ is None and state is not None:
            round_ = state.round
        entry = Entry("commit", commit.sha, round_, "round commit")
        self.walk.entries.append(entry)
        self.signature(commit, entry)
        blueprint = None
        if blueprint_data is None:
            entry.problem(f"no {self.layout.blueprint} at this round commit")
        else:
            blueprint = _load_blueprint(self.full(self.layout.blueprint), blueprint_data)
            if blueprint is None:
                entry.problem(f"{self.layout.blueprint} at this commit is not a valid blueprint")
        if state is None:
            entry.problem(
                f"{self.layout.round_state} is not a round-state ConfigMap"
                if state_data is not None
                else f"no {self.layout.round_state} at this round commit"
            )
        else:
            self.state_fields(state, entry)
            self.trailers(commit.trailers, state, blueprint, entry)
            self.name_model(state.model, entry)
        self.name_model(as_digest(commit.trailers.get(_MODEL)), entry)
        if present:
            if len(present) > 1:
                entry.problem(f"one commit wrote the records of rounds {sorted(present)}")
            for number, data in present.items():
                self.aggregation(commit, number, data, state, blueprint, entry)
        elif removed and state is not None:
            self.rollback(state, entry, removed)
        elif state is not None:
            self.round_step(state, entry)
        if state is not None:
            if state.round is not None and state.model is not None and state.phase == "Running":
                self.starts.setdefault(state.round, set()).add(state.model)
            self.prev = state

    def edit(
        self,
        commit: AuditCommit,
        rel_paths: list[str],
        records: list[int],
        blueprint_data: bytes | None,
        state: RoundStateView | None,
        *,
        added: bool,
    ) -> None:
        author = safe_author(commit.author)
        if self.layout.blueprint in rel_paths:
            verb = "added" if added else "edited"
            verb = verb if blueprint_data is not None else "removed"
            text = f"blueprint {verb} by {author} in {commit.sha[:7]}"
        else:
            files = f"{len(rel_paths)} file{'' if len(rel_paths) == 1 else 's'}"
            text = f"{files} edited by {author} in {commit.sha[:7]}"
        entry = Entry("edit", commit.sha, None, text)
        self.walk.entries.append(entry)
        for number in records:
            entry.problem(f"the record of round {number} changed outside a round commit")
        if self.layout.round_state in rel_paths and self.rounds_begun:
            entry.problem(f"{self.layout.round_state} changed outside a round commit")
        if state is not None:
            self.prev = state

    def signature(self, commit: AuditCommit, entry: Entry) -> None:
        sig = commit.signature
        if sig is None or sig.good:
            return
        key = f"key {sig.key}" if sig.key else "a key"
        what = {
            "N": "round commit is not signed",
            "U": f"signed by {key}, which is not an allowed signer",
            "B": "bad signature: the commit is not what was signed",
            "X": f"signed by {key}, with a signature that has expired",
            "Y": f"signed by {key}, which has expired",
            "R": f"signed by {key}, which was revoked",
        }.get(sig.status, f"its signature by {key} could not be checked")
        entry.problem(what)

    def state_fields(self, state: RoundStateView, entry: Entry) -> None:
        for name, value in (
            ("round", state.round),
            ("attempt", state.attempt),
            ("phase", state.phase),
            ("globalModelDigest", state.model),
        ):
            if value is None:
                entry.problem(f"{self.layout.round_state}: data.{name} is missing or malformed")

    def trailers(
        self,
        trailers: Mapping[str, str],
        state: RoundStateView,
        blueprint: Blueprint | None,
        entry: Entry,
    ) -> None:
        state_file = self.layout.round_state
        trailer_round = as_count(trailers.get(_ROUND))
        if trailer_round is None:
            entry.problem(f"the {_ROUND} trailer is not a round number")
        elif state.round is not None and trailer_round != state.round:
            entry.problem(
                f"the {_ROUND} trailer says round {trailer_round}, {state_file} round {state.round}"
            )
        model = as_digest(trailers.get(_MODEL))
        if model is None:
            entry.problem(f"the {_MODEL} trailer is not a digest")
        elif state.model is not None and model != state.model:
            entry.problem(f"the {_MODEL} trailer names {model}, {state_file} {state.model}")
        if blueprint is None:
            return
        if as_name(trailers.get(_EXPERIMENT)) != blueprint.name:
            entry.problem(f"the {_EXPERIMENT} trailer is not the blueprint's name")
        if state.experiment is not None and state.experiment != blueprint.name:
            entry.problem(f"{state_file}: data.experiment is not the blueprint's name")
        named = as_digest(trailers.get(_BLUEPRINT))
        if named != blueprint.digest:
            entry.problem(
                f"the {_BLUEPRINT} trailer names {named or 'no digest'}, "
                f"the blueprint at this commit hashes to {blueprint.digest}"
            )
        if state.blueprint is not None and state.blueprint != blueprint.digest:
            entry.problem(
                f"{state_file} names blueprint {state.blueprint}, "
                f"the blueprint at this commit hashes to {blueprint.digest}"
            )

    # -- what the commit did ------------------------------------------------------------

    def round_step(self, state: RoundStateView, entry: Entry) -> None:
        """A round commit that aggregated nothing: a start, a roster, a retry, the end."""
        prev, n = self.prev, state.round
        if state.phase == "Failed":
            entry.text = f"experiment failed (attempt {state.attempt})"
        elif prev is None or prev.round is None:
            entry.text = f"started (attempt {state.attempt})"
        elif n != prev.round:
            entry.text = "round commit"
            entry.problem(f"the round goes from {prev.round} to {n} without a round record")
        elif (
            state.attempt is not None
            and prev.attempt is not None
            and (state.attempt == prev.attempt + 1)
        ):
            entry.text = f"retried (attempt {state.attempt})"
        elif state.attempt == prev.attempt:
            entry.text = f"roster (attempt {state.attempt})"
        else:
            entry.text = "round commit"
            entry.problem(f"the attempt goes from {prev.attempt} to {state.attempt}")
        if prev is not None and prev.round == n and prev.model != state.model:
            entry.problem(
                f"round {n}'s model changes from {prev.model} to {state.model} "
                "without an aggregation"
            )

    def rollback(self, state: RoundStateView, entry: Entry, removed: list[int]) -> None:
        """A round commit that removed round records: back to the start of a round."""
        n = state.round
        entry.text = f"rolled back to the start of round {n} (attempt {state.attempt})"
        if n is None:
            return
        for agg in self.walk.aggregations:
            if agg.round >= n:
                agg.superseded = True
        if removed and min(removed) < n:
            entry.problem(f"removed the record of round {min(removed)}, before round {n}")
        started = self.starts.get(n, set())
        if state.model is not None and state.model not in started:
            entry.problem(f"rolled back to model {state.model}, which round {n} never started from")

    def aggregation(
        self,
        commit: AuditCommit,
        number: int,
        data: bytes,
        state: RoundStateView | None,
        blueprint: Blueprint | None,
        entry: Entry,
    ) -> None:
        """The commit that wrote round ``number``'s record."""
        record_file = self.layout.history(number)
        entry.kind, entry.round, entry.text = "round", number, "aggregated"
        entry.model = "(unreadable)"
        record = parse_mapping(data)
        if record is None:
            entry.problem(f"{record_file} is not a YAML mapping")
            return
        model = as_digest(record.get("model"))
        base = as_digest(record.get("baseModel"))
        entry.model = model or "(no digest)"
        if model is None:
            entry.problem(f"{record_file}: model is missing or not a digest")
        if base is None:
            entry.problem(f"{record_file}: baseModel is missing or not a digest")
        self.name_model(model, entry)
        self.name_model(base, entry)
        if as_count(record.get("round")) != number:
            entry.problem(f"{record_file}: round is not {number}")
        attempt = as_count(record.get("attempt"))
        if blueprint is not None and as_name(record.get("experiment")) != blueprint.name:
            entry.problem(f"{record_file}: experiment is not the blueprint's name")
        strategy = record.get("strategy")
        if blueprint is not None and (
            not isinstance(strategy, Mapping) or strategy.get("name") != blueprint.strategy.name
        ):
            entry.problem(
                f"{record_file}: strategy is not the blueprint's ({blueprint.strategy.name})"
            )
        prev = self.prev
        if prev is None:
            entry.problem(f"round {number} was aggregated before any round started")
        else:
            if prev.round != number:
                entry.problem(
                    f"the record is of round {number}, the experiment was at round {prev.round}"
                )
            elif prev.phase != "Running":
                entry.problem(f"round {number} was aggregated after the experiment ended")
            if base is not None and prev.model is not None and base != prev.model:
                entry.problem(
                    f"the record's baseModel is {base}, round {number} started from {prev.model}"
                )
            if attempt != prev.attempt:
                entry.problem(
                    f"the record says attempt {attempt}, the round was at attempt {prev.attempt}"
                )
        trailer = as_digest(commit.trailers.get(_MODEL))
        if model is not None and trailer is not None and model != trailer:
            entry.problem(f"the record's model is {model}, the {_MODEL} trailer names {trailer}")
        if state is not None:
            if model is not None and state.model is not None and model != state.model:
                entry.problem(
                    f"the record's model is {model}, {self.layout.round_state} names {state.model}"
                )
            if state.phase == "Completed":
                if state.round != number:
                    entry.problem(f"completed at round {state.round}, after aggregating {number}")
            elif state.phase == "Running":
                if state.round != number + 1 or state.attempt != 1:
                    entry.problem(
                        f"after round {number} the experiment is at round {state.round} "
                        f"attempt {state.attempt}, not round {number + 1} attempt 1"
                    )
            else:
                entry.problem(f"the experiment failed in the commit that aggregated round {number}")
        roster = self.clusters(record.get("roster"), "roster", entry)
        contributors = self.clusters(record.get("contributors"), "contributors", entry)
        entry.contributors = len(contributors)
        for cluster in contributors:
            if cluster not in roster:
                entry.problem("a contributor that is not on the round's roster", cluster=cluster)
        secure = record.get("secureAggregation")
        secure = secure if isinstance(secure, Mapping) else None
        updates, counts = self.reported(record, contributors, entry)
        self.walk.aggregations.append(
            Aggregation(
                round=number,
                commit=commit.sha,
                base=base,
                model=model,
                roster=roster,
                contributors=contributors,
                candidates=_candidates(record, roster, contributors),
                updates=updates,
                num_examples=counts,
                blueprint=blueprint,
                entry=entry,
                dp=record.get("dp") if isinstance(record.get("dp"), Mapping) else None,
                secure=secure,
                secagg=self.reveal_record(number, blueprint, entry) if secure is not None else None,
            )
        )

    def clusters(self, value: object, name: str, entry: Entry) -> tuple[str, ...]:
        if not isinstance(value, list):
            entry.problem(f"the record's {name} is not a list")
            return ()
        names = [as_cluster(v) for v in value]
        if None in names:
            entry.problem(f"the record's {name} holds a value that is not a cluster name")
        return tuple(n for n in names if n is not None)

    def reported(
        self, record: Mapping[str, Any], contributors: tuple[str, ...], entry: Entry
    ) -> tuple[dict[str, str] | None, dict[str, int]]:
        """The hub digests (and example counts) the record holds for each cluster: for a
        secure round, each survivor's masked input's (no update is stored in the clear)."""
        raw = record.get("updates")
        secure = record.get("secureAggregation")
        if isinstance(secure, Mapping):
            raw = secure.get("maskedInputs")
        counts: dict[str, int] = {}
        raw_counts = record.get("numExamples", record.get("num_examples"))
        if isinstance(raw_counts, Mapping):
            for cluster, n in raw_counts.items():
                if as_cluster(cluster) and as_count(n) is not None:
                    counts[cluster] = as_count(n)  # type: ignore[assignment]
        if not isinstance(raw, Mapping):
            entry.problem("no hub digest recorded (the record has no updates field)")
            return None, counts
        updates: dict[str, str] = {}
        for cluster, value in raw.items():
            if as_cluster(cluster) is None:
                entry.problem("the record's updates name a value that is not a cluster name")
                continue
            if isinstance(value, Mapping):
                n = as_count(value.get("numExamples", value.get("num_examples")))
                if n is not None:
                    counts.setdefault(cluster, n)
                value = value.get("digest", value.get("sha256"))
            digest = as_update_digest(value)
            if digest is None:
                entry.problem("the record's hub digest is not a digest", cluster=cluster)
                continue
            updates[cluster] = digest
        for cluster in contributors:
            if cluster not in updates:
                entry.problem("no hub digest recorded", cluster=cluster)
        return updates, counts


def _candidates(
    record: Mapping[str, Any], roster: tuple[str, ...], contributors: tuple[str, ...]
) -> tuple[str, ...]:
    """The clusters the strategy chose among: succeeded and not rejected, in roster order."""
    status = record.get("status")
    rejected = record.get("rejected")
    if not isinstance(status, Mapping):
        return contributors
    refused = set(rejected) if isinstance(rejected, Mapping) else set()
    chosen = tuple(c for c in roster if status.get(c) == "Succeeded" and c not in refused)
    return chosen if set(contributors) <= set(chosen) else contributors


def walk_history(history: History, path: str) -> Walk:
    """Walk the commits that touched the experiment at ``path``, oldest first.

    Raises:
        InputError: no commit touches ``path``, or there is no blueprint there at the tip.
        GitError: git failed.
    """
    return _Walker(history, path).run()

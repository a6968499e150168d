"""What an audit found, and the two ways it is shown: a line per round and per problem, or JSON.

The report is the audit's only output, and what it quotes comes from Git and the store,
which an attacker may have written. So every value in it is one the audit produced or
checked against its pattern first: round numbers, short and full commit ids, digests,
cluster names, key fingerprints. A field that fails its pattern is described ("not a
digest"), never quoted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Entry", "Problem", "Report", "report_json", "report_lines"]

#: What one line of the report is about.
EntryKind = Literal["round", "commit", "edit"]


@dataclass(frozen=True)
class Problem:
    """One thing that does not hold.

    Attributes:
        round: the round it belongs to (None: not a round's, e.g. a person's commit).
        commit: the full id of the commit it was found at.
        cluster: the cluster it concerns, or "".
        what: what differs, e.g. "the store's update hashes to sha256:..., the hub
            reported sha256:...".
    """

    round: int | None
    commit: str
    cluster: str
    what: str


@dataclass
class Entry:
    """One line of the report: an aggregated round, another round commit, or an edit.

    Attributes:
        kind: ``round`` (the commit that aggregated a round), ``commit`` (a round commit
            that aggregated nothing: a roster, a retry, a rollback, the end), ``edit`` (a
            person's commit without the round trailers).
        commit: the full commit id.
        round: the round (None for an edit).
        text: what the commit did, in the audit's own words.
        model: the round's new model, for ``round`` entries.
        contributors: how many clusters the round's model is made of.
        problems: what does not hold at this commit.
        notes: what was not checked, and why (not a problem).
    """

    kind: EntryKind
    commit: str
    round: int | None
    text: str
    model: str = ""
    contributors: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def problem(self, what: str, *, cluster: str = "") -> None:
        """Record a problem at this entry's commit and round."""
        self.problems.append(Problem(self.round, self.commit, cluster, what))


@dataclass
class Report:
    """The audit of one experiment.

    Attributes:
        experiment: the experiment's name (from the blueprint at the tip).
        path: its directory in the config repo.
        allowed_signers: the allowed-signers file signatures were checked against, or None
            when they were not checked.
        store: the store the models and updates were read from (credentials redacted).
        reaggregated: whether each round's model was recomputed.
        signers_hint: an allowed-signers file found beside a local repo, named when
            signatures were not checked (it is not used: the auditor chooses whom to trust).
        entries: one per commit that matters, oldest first.
    """

    experiment: str
    path: str
    allowed_signers: str | None
    store: str
    reaggregated: bool
    entries: list[Entry] = field(default_factory=list)
    signers_hint: str | None = None

    @property
    def problems(self) -> list[Problem]:
        return [p for e in self.entries for p in e.problems]

    @property
    def rounds(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "round"]

    @property
    def ok(self) -> bool:
        return not self.problems


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _short(sha: str) -> str:
    return sha[:7]


def _problem_line(p: Problem) -> str:
    where = f"round {p.round}" if p.round is not None else "-"
    return f"  problem  {where}  {_short(p.commit)}  {p.cluster or '-'}  {p.what}"


def report_lines(report: Report) -> list[str]:
    """The report as text: a header, a line per entry and per problem, a summary."""
    signatures = (
        f"signatures checked against {report.allowed_signers}"
        if report.allowed_signers
        else "signatures NOT checked (no --allowed-signers given"
        + (f"; {report.signers_hint} lies beside the repo)" if report.signers_hint else ")")
    )
    lines = [
        f"{report.experiment} ({report.path}), store {report.store}: {signatures}"
        + ("; every round re-aggregated" if report.reaggregated else "")
    ]
    for entry in report.entries:
        where = f"round {entry.round}" if entry.round is not None else "edit"
        if entry.kind == "round":
            status = "OK" if not entry.problems else _count(len(entry.problems), "problem")
            lines.append(
                f"{where}  {_short(entry.commit)}  {status}  {entry.text}: model {entry.model}, "
                f"{entry.contributors} contributors"
            )
        else:
            lines.append(f"{where}  {_short(entry.commit)}  {entry.text}")
        lines.extend(f"  note  {n}" for n in entry.notes)
        lines.extend(_problem_line(p) for p in entry.problems)
    problems = report.problems
    verdict = "all checks hold" if not problems else _count(len(problems), "problem")
    aggregated = len(report.rounds)
    distinct = len({e.round for e in report.rounds})
    again = f" ({aggregated} aggregations, after rollbacks)" if aggregated != distinct else ""
    lines.append(
        f"verified {_count(distinct, 'round')}{again} of {report.experiment}: {verdict}"
        + ("" if report.allowed_signers else " (signatures not checked)")
    )
    return lines


def _problem_json(p: Problem) -> dict[str, Any]:
    return {"round": p.round, "commit": p.commit, "cluster": p.cluster or None, "what": p.what}


def report_json(report: Report) -> dict[str, Any]:
    """The report as one JSON document (the same content as :func:`report_lines`)."""
    return {
        "experiment": report.experiment,
        "path": report.path,
        "store": report.store,
        "signatures": {
            "checked": report.allowed_signers is not None,
            "allowedSigners": report.allowed_signers,
            "besideTheRepo": report.signers_hint,
        },
        "reaggregated": report.reaggregated,
        "ok": report.ok,
        "rounds": len({e.round for e in report.rounds}),
        "aggregations": len(report.rounds),
        "entries": [
            {
                "kind": e.kind,
                "commit": e.commit,
                "round": e.round,
                "text": e.text,
                **({"model": e.model, "contributors": e.contributors} if e.kind == "round" else {}),
                "ok": not e.problems,
                "notes": list(e.notes),
                "problems": [_problem_json(p) for p in e.problems],
            }
            for e in report.entries
        ],
        "problems": [_problem_json(p) for p in report.problems],
    }

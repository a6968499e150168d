"""The rounds of an experiment, read back from Git: the table `history` prints and plots.

Git is the round log. Each aggregation commit carries the round's record
(`.history/round-N.yaml`: contributors, rejections, metrics, model digest) and trailers
(`FL-Round`, `FL-Model`); the commit that started a round gives its start time. Reading
both back gives the same table the simulation printed while it ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

from fl_gitops.render import Layout

__all__ = ["RoundRow", "plot_rounds", "round_metric", "round_rows", "rounds_table"]


class _Log(Protocol):
    root: Path

    def log(self, path: str, *, max_count: int | None = None) -> list[Any]: ...


@dataclass(frozen=True)
class RoundRow:
    """One aggregated round."""

    round: int
    commit: str
    committed_at: datetime | None
    model: str
    contributors: int
    rejected: int
    accuracy: float | None
    loss: float | None
    seconds: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    rejected_reasons: dict[str, str] = field(default_factory=dict)


def round_metric(record: dict[str, Any], name: str) -> float | None:
    """Server-side evaluation first (the held-out set), else the clusters' own numbers."""
    evaluation = record.get("evaluation") or {}
    metrics = record.get("metrics") or {}
    for source, key in (
        (evaluation, name),
        (metrics, f"test_{name}"),
        (metrics, f"train_{name}"),
        (metrics, name),
    ):
        value = source.get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


def round_rows(repo: _Log, path: str) -> list[RoundRow]:
    """Every aggregated round of the experiment at ``path``, oldest first.

    Args:
        repo: a checked-out config repo (anything with ``root`` and ``log``).
        path: the experiment's directory in the repo.
    """
    from fl_gitops.gitops import ROUND_TRAILER  # GitPython only where history is read

    layout = Layout()
    history = repo.root / path / layout.history_dir
    commits = list(reversed(repo.log(path)))  # oldest first
    started: dict[int, datetime] = {}
    for commit in commits:
        value = commit.trailers.get(ROUND_TRAILER, "")
        if value.isdigit():
            started.setdefault(int(value), commit.committed_at)
    rows = []
    files = sorted(history.glob("round-*.yaml"), key=lambda p: int(p.stem.split("-")[1]))
    for file in files:
        record = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        round_ = int(record.get("round", file.stem.split("-")[1]))
        made = repo.log(f"{path}/{layout.history(round_)}")
        commit = made[-1] if made else None  # the commit that first wrote the record
        when = commit.committed_at if commit else None
        begin = started.get(round_)
        seconds = (when - begin).total_seconds() if when and begin else None
        rows.append(
            RoundRow(
                round=round_,
                commit=commit.sha if commit else "",
                committed_at=when,
                model=str(record.get("model", "")),
                contributors=len(record.get("contributors") or []),
                rejected=len(record.get("rejected") or {}),
                accuracy=round_metric(record, "accuracy"),
                loss=round_metric(record, "loss"),
                seconds=seconds,
                metrics=dict(record.get("metrics") or {}),
                rejected_reasons=dict(record.get("rejected") or {}),
            )
        )
    return rows


def rounds_table(rows: list[RoundRow], *, title: str = "") -> Any:
    """A rich Table of the rows (accuracy as a percentage)."""
    from rich.table import Table

    table = Table(title=title or None)
    for name in ("round", "accuracy", "loss", "contributors", "rejected", "seconds", "model"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for row in rows:
        table.add_row(
            str(row.round),
            f"{100 * row.accuracy:.2f}%" if row.accuracy is not None else "-",
            f"{row.loss:.4f}" if row.loss is not None else "-",
            str(row.contributors),
            str(row.rejected),
            f"{row.seconds:.1f}" if row.seconds is not None else "-",
            row.model.removeprefix("sha256:")[:12],
        )
    return table


def plot_rounds(rows: list[RoundRow], out: Path, *, title: str = "") -> None:
    """Accuracy and loss per round as a PNG (needs matplotlib, in the train extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r.round for r in rows]
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 4))
    acc = [100 * r.accuracy if r.accuracy is not None else float("nan") for r in rows]
    loss = [r.loss if r.loss is not None else float("nan") for r in rows]
    acc_ax.plot(rounds, acc, marker="o")
    acc_ax.set(xlabel="round", ylabel="accuracy (%)", title="accuracy")
    loss_ax.plot(rounds, loss, marker="o", color="tab:red")
    loss_ax.set(xlabel="round", ylabel="loss", title="loss")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)

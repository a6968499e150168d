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
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from fl_gitops.render import Layout

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "LOG_SCALE_SPAN",
    "RoundRow",
    "plot_rounds",
    "round_epsilon",
    "round_metric",
    "round_rows",
    "rounds_table",
]


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
    held_out: bool = False
    """Whether accuracy and loss were measured on held-out data (the server's evaluation
    or the clusters' test data), not on the data the model was trained on."""
    epsilon: float | None = None
    """The DP budget spent after this round (epsilon at the record's ``delta``), or None
    when the experiment runs without DP (or a round had no noise)."""
    delta: float | None = None
    target_epsilon: float | None = None


def round_metric(record: dict[str, Any], name: str) -> float | None:
    """Server-side evaluation first (the held-out set), else the clusters' own numbers."""
    return _metric(record, name)[0]


def _metric(record: dict[str, Any], name: str) -> tuple[float | None, bool]:
    """The metric and whether it was measured on held-out data (the server's held-out
    set, or the clusters' own test data), as :func:`round_metric` picks it."""
    evaluation = record.get("evaluation") or {}
    metrics = record.get("metrics") or {}
    for source, key, held_out in (
        (evaluation, name, True),
        (metrics, f"test_{name}", True),
        (metrics, f"train_{name}", False),
        (metrics, name, False),
    ):
        value = source.get(key)
        # a bool is an int to Python, never a metric
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value), held_out
    return None, False


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
        accuracy, accuracy_held_out = _metric(record, "accuracy")
        loss, loss_held_out = _metric(record, "loss")
        eps, delta, target = _privacy(record)
        rows.append(
            RoundRow(
                round=round_,
                commit=commit.sha if commit else "",
                committed_at=when,
                model=str(record.get("model", "")),
                contributors=len(record.get("contributors") or []),
                rejected=len(record.get("rejected") or {}),
                accuracy=accuracy,
                loss=loss,
                seconds=seconds,
                metrics=dict(record.get("metrics") or {}),
                rejected_reasons=dict(record.get("rejected") or {}),
                held_out=accuracy_held_out if accuracy is not None else loss_held_out,
                epsilon=eps,
                delta=delta,
                target_epsilon=target,
            )
        )
    return rows


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def round_epsilon(record: dict[str, Any]) -> float | None:
    """The DP budget spent after a round, as its record says (None without DP)."""
    return _privacy(record)[0]


def _privacy(record: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
    """The epsilon spent after the round, its delta and the target, as the record's ``dp``
    says."""
    dp = record.get("dp")
    if not isinstance(dp, dict):
        return None, None, None
    return _number(dp.get("epsilon")), _number(dp.get("delta")), _number(dp.get("targetEpsilon"))


def rounds_table(rows: list[RoundRow], *, title: str = "") -> Any:
    """A rich Table of the rows (accuracy as a percentage)."""
    from rich.table import Table

    table = Table(title=title or None)
    # The epsilon column only for a DP experiment: the others have none to show.
    private = any(row.epsilon is not None for row in rows)
    names = ["round", "accuracy", "loss", "contributors", "rejected", "seconds", "model"]
    if private:
        names.insert(names.index("seconds"), "epsilon")
    for name in names:
        table.add_column(name, justify="left" if name == "model" else "right")
    for row in rows:
        cells = [
            str(row.round),
            f"{100 * row.accuracy:.2f}%" if row.accuracy is not None else "-",
            f"{row.loss:.4f}" if row.loss is not None else "-",
            str(row.contributors),
            str(row.rejected),
            f"{row.seconds:.1f}" if row.seconds is not None else "-",
            row.model.removeprefix("sha256:")[:12],
        ]
        if private:
            cells.insert(
                names.index("epsilon"), f"{row.epsilon:.3f}" if row.epsilon is not None else "-"
            )
        table.add_row(*cells)
    return table


LOG_SCALE_SPAN = 10.0
"""Loss is drawn on a log scale when its largest positive value is this many times its
smallest: a loss that falls by decades is a flat line at the bottom of a linear axis."""


def plot_rounds(
    rows: list[RoundRow],
    out: Path | None = None,
    *,
    title: str = "",
    baseline: float | None = None,
) -> Figure | None:
    """Accuracy and loss per round (and, for a DP experiment, the epsilon spent), drawn so
    that a reader can trust them at a glance.

    Accuracy sits on a fixed 0-100% axis (a rise from 91% to 92% is not drawn as a
    climb from the floor to the ceiling); loss goes on a log scale when it spans a decade
    or more (:data:`LOG_SCALE_SPAN`); the centralized baseline, when it was measured, is a
    labelled dashed line on the accuracy axis; the axes say whether the numbers were
    measured on held-out data (and an axis with no value says "not measured"); the
    figure's title names the experiment. The PNG's text chunks repeat the title and what
    the figure shows (``Description``), for an image viewer and for a check on the file.

    Args:
        rows: the aggregated rounds (:func:`round_rows`), oldest first.
        out: a PNG path to write, or None to only build the figure.
        title: the experiment's name, shown as the figure's title.
        baseline: the centralized baseline's held-out accuracy as a fraction (0-1), or
            None when it was not measured.

    Returns:
        The matplotlib Figure, or None when ``rows`` is empty: a run with no aggregated
        round gets no plot at all (nothing is written), never empty axes.

    Raises:
        ModuleNotFoundError: matplotlib is not installed (it comes with the train extra).
        OSError: ``out`` cannot be written.
    """
    if not rows:
        return None
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    private = [r for r in rows if r.epsilon is not None]
    fig = Figure(figsize=(15, 4.2) if private else (10, 4.2))
    axes = fig.subplots(1, 3 if private else 2)
    acc_ax, loss_ax = axes[0], axes[1]
    rounds = [r.round for r in rows]
    acc = [100 * r.accuracy if r.accuracy is not None else float("nan") for r in rows]
    loss = [r.loss if r.loss is not None else float("nan") for r in rows]
    where = _measured_on(rows)

    acc_ax.plot(rounds, acc, marker="o", label="federated (global model)")
    if baseline is not None:
        acc_ax.axhline(
            100 * baseline,
            linestyle="--",
            color="tab:gray",
            label=f"centralized baseline ({100 * baseline:.1f}%)",
        )
    acc_ax.set_ylim(0, 100)
    acc_ax.set(xlabel="round", ylabel="accuracy (%)", title=f"accuracy on {where}")
    acc_ax.legend(loc="lower right")

    loss_ax.plot(rounds, loss, marker="o", color="tab:red")
    positive = [v for v in loss if v > 0]  # NaN compares False: dropped too
    log = bool(positive) and max(positive) >= LOG_SCALE_SPAN * min(positive)
    if log:
        loss_ax.set_yscale("log")
    loss_ax.set(
        xlabel="round", ylabel="loss (log scale)" if log else "loss", title=f"loss on {where}"
    )

    if private:
        # The privacy budget spent, beside what it bought: epsilon after each round.
        eps_ax = axes[2]
        deltas = sorted({r.delta for r in private if r.delta is not None})
        at = f" at delta {deltas[0]:g}" if len(deltas) == 1 else ""
        eps_ax.plot(
            [r.round for r in private],
            [r.epsilon for r in private],
            marker="o",
            color="tab:purple",
        )
        target = private[-1].target_epsilon
        if target is not None:
            eps_ax.axhline(
                target, linestyle="--", color="tab:gray", label=f"targetEpsilon ({target:g})"
            )
            eps_ax.legend(loc="lower right")
        eps_ax.set_ylim(bottom=0)
        eps_ax.set(xlabel="round", ylabel="epsilon", title=f"privacy spent (epsilon{at})")
        eps_ax.grid(alpha=0.3)
        eps_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax, values in ((acc_ax, acc), (loss_ax, loss)):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no round 1.5
        if all(v != v for v in values):  # all NaN: say so rather than leave the axes blank
            ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if out is not None:
        # What the figure shows, also in the PNG's text chunks: an image viewer's title,
        # and a check for a test or a script that only has the file.
        summary = [f"{len(rows)} round(s)", f"measured on {where}"]
        summary.append(
            f"centralized baseline {100 * baseline:.1f}%"
            if baseline is not None
            else "no centralized baseline"
        )
        summary.append("loss on a log scale" if log else "loss on a linear scale")
        if private:
            last = private[-1]
            summary.append(f"epsilon {last.epsilon:.4g} after round {last.round}")
        metadata = {"Title": title or "rounds", "Description": "; ".join(summary)}
        fig.savefig(out, dpi=100, format="png", metadata=metadata)
    return fig


def _measured_on(rows: list[RoundRow]) -> str:
    """Where the plotted numbers were measured, as the axes' titles say it ("on ...")."""
    measured = [r for r in rows if r.accuracy is not None or r.loss is not None]
    if measured and all(r.held_out for r in measured):
        return "held-out data"
    if any(r.held_out for r in measured):
        return "held-out data where measured, else training data"
    return "training data (no held-out evaluation)"

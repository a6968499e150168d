"""Plots a reader trusts: accuracy on a fixed 0-100% axis, loss on a log scale when it spans
decades, the centralized baseline drawn when it was measured, "held-out" said where it is,
the experiment's name in the title, and no plot at all for a run with no round."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

pytest.importorskip("matplotlib")

from fl_gitops.gitops import ConfigRepo
from fl_gitops.history import RoundRow, plot_rounds, round_rows
from tests.commands.test_loud_errors import make_remote

PATH = "experiments/digits"


def _row(
    round_: int, accuracy: float | None, loss: float | None, *, held_out: bool = True
) -> RoundRow:
    return RoundRow(
        round=round_,
        commit="0" * 40,
        committed_at=None,
        model="sha256:" + "ab" * 32,
        contributors=3,
        rejected=0,
        accuracy=accuracy,
        loss=loss,
        seconds=None,
        held_out=held_out,
    )


def test_accuracy_is_drawn_on_a_fixed_0_to_100_percent_axis() -> None:
    # 91% to 92%: autoscaling would draw this as a climb from the floor to the ceiling
    fig = plot_rounds([_row(1, 0.91, 0.30), _row(2, 0.92, 0.28)], title="digits")
    assert fig is not None
    acc_ax = fig.axes[0]
    assert acc_ax.get_ylim() == (0.0, 100.0)
    assert list(acc_ax.lines[0].get_ydata()) == pytest.approx([91.0, 92.0])


def test_loss_spanning_a_decade_is_drawn_on_a_log_scale() -> None:
    fig = plot_rounds([_row(1, 0.2, 2.3), _row(2, 0.8, 0.5), _row(3, 0.95, 0.2)])
    assert fig is not None
    assert fig.axes[1].get_yscale() == "log"
    assert fig.axes[1].get_ylabel() == "loss (log scale)"


def test_loss_within_a_decade_stays_linear() -> None:
    fig = plot_rounds([_row(1, 0.2, 2.3), _row(2, 0.8, 0.5), _row(3, 0.95, 0.24)])
    assert fig is not None
    assert fig.axes[1].get_yscale() == "linear"


def test_the_centralized_baseline_is_a_labelled_dashed_line_when_measured() -> None:
    fig = plot_rounds([_row(1, 0.5, 1.0), _row(2, 0.7, 0.8)], baseline=0.934)
    assert fig is not None
    baseline = [ln for ln in fig.axes[0].lines if "baseline" in str(ln.get_label())]
    assert [str(ln.get_label()) for ln in baseline] == ["centralized baseline (93.4%)"]
    assert baseline[0].get_linestyle() == "--"
    assert list(baseline[0].get_ydata()) == pytest.approx([93.4, 93.4])
    legend = fig.axes[0].get_legend()
    assert legend is not None
    assert "centralized baseline (93.4%)" in [t.get_text() for t in legend.get_texts()]


def test_no_baseline_line_when_it_was_not_measured() -> None:
    fig = plot_rounds([_row(1, 0.5, 1.0)])
    assert fig is not None
    assert not [ln for ln in fig.axes[0].lines if "baseline" in str(ln.get_label())]


def test_the_title_names_the_experiment_and_the_axes_say_held_out() -> None:
    fig = plot_rounds([_row(1, 0.5, 1.0)], title="digits-fedavg")
    assert fig is not None
    assert fig.get_suptitle() == "digits-fedavg"
    acc_ax, loss_ax = fig.axes
    assert (acc_ax.get_title(), acc_ax.get_ylabel()) == (
        "accuracy on held-out data",
        "accuracy (%)",
    )
    assert (loss_ax.get_title(), loss_ax.get_ylabel()) == ("loss on held-out data", "loss")


def test_numbers_from_training_data_are_not_called_held_out() -> None:
    fig = plot_rounds([_row(1, 0.5, 1.0, held_out=False)])
    assert fig is not None
    assert fig.axes[0].get_title() == "accuracy on training data (no held-out evaluation)"


def test_a_run_with_no_round_gets_no_plot_at_all(tmp_path: Path) -> None:
    out = tmp_path / "rounds.png"
    assert plot_rounds([], out, title="digits") is None
    assert not out.exists()


def test_the_png_is_written_where_asked(tmp_path: Path) -> None:
    out = tmp_path / "rounds.png"
    plot_rounds([_row(1, 0.5, 1.0), _row(2, 0.6, 0.9)], out, title="digits")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _git(cwd: Path, *argv: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *argv],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_round_rows_say_whether_the_metrics_were_measured_on_held_out_data(
    tmp_path: Path,
) -> None:
    remote = make_remote(tmp_path, [PATH])
    seed = tmp_path / "seed"
    history = seed / PATH / ".history"
    history.mkdir()
    records = {
        1: {"round": 1, "model": "sha256:" + "01" * 32, "evaluation": {"accuracy": 0.8}},
        2: {"round": 2, "model": "sha256:" + "02" * 32, "metrics": {"test_accuracy": 0.85}},
        3: {"round": 3, "model": "sha256:" + "03" * 32, "metrics": {"train_accuracy": 0.9}},
    }
    for n, record in records.items():
        (history / f"round-{n}.yaml").write_text(yaml.safe_dump(record))
    _git(seed, "add", "-A")
    _git(seed, "commit", "-q", "-m", "rounds")
    _git(seed, "push", "-q", "origin", "main")
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    rows = round_rows(repo, PATH)
    assert [(r.round, r.accuracy, r.held_out) for r in rows] == [
        (1, 0.8, True),
        (2, 0.85, True),
        (3, 0.9, False),
    ]
    fig = plot_rounds(rows)
    assert fig is not None
    assert fig.axes[0].get_title() == (
        "accuracy on held-out data where measured, else training data"
    )


def test_an_axis_with_no_value_says_not_measured() -> None:
    fig = plot_rounds([_row(1, None, 0.9), _row(2, None, 0.7)])
    assert fig is not None
    assert [t.get_text() for t in fig.axes[0].texts] == ["not measured"]
    assert list(fig.axes[1].texts) == []


def _png_text(path: Path) -> dict[str, str]:
    from PIL import Image

    with Image.open(path) as image:
        return {k: v for k, v in image.text.items() if k in ("Title", "Description")}


def test_the_png_says_what_it_shows_in_its_text_chunks(tmp_path: Path) -> None:
    out = tmp_path / "rounds.png"
    plot_rounds([_row(1, 0.5, 2.0), _row(2, 0.9, 0.1)], out, title="digits", baseline=0.95)
    assert _png_text(out) == {
        "Title": "digits",
        "Description": "2 round(s); measured on held-out data; centralized baseline 95.0%; "
        "loss on a log scale",
    }


def test_simulate_draws_its_measured_centralized_baseline(tmp_path: Path) -> None:
    # the simulation's own call site: the baseline it measured reaches rounds.png
    from fl_gitops.cli import main

    blueprint = Path(__file__).resolve().parents[2] / "blueprints" / "digits-fedavg.yaml"
    work = tmp_path / "sim"
    argv = ["simulate", str(blueprint), "--clusters", "3", "--rounds", "1", "--centralized"]
    assert main([*argv, "--workdir", str(work), "-q"]) == 0
    report = json.loads((work / "report.json").read_text())
    shown = _png_text(work / "rounds.png")
    assert shown["Title"] == "digits-fedavg"
    baseline = f"centralized baseline {100 * report['centralized_accuracy']:.1f}%"
    assert shown["Description"].startswith(f"1 round(s); measured on held-out data; {baseline};")

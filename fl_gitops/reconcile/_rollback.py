"""Roll an experiment back to an earlier round, as a new commit (history is never rewritten).

The experiment directory is restored as it was when round N started, and round N is
rendered again as a fresh attempt: new Job names, so each cluster trains again from
round N's global model (still in the content-addressed store) instead of the hub
reporting the old Jobs as done.
"""

from __future__ import annotations

import os
from pathlib import Path

from fl_gitops.blueprint import load_blueprint
from fl_gitops.errors import InputError
from fl_gitops.gitops import (
    ROUND_TRAILER,
    Change,
    ConfigRepo,
    PublishResult,
    PullRequestSpec,
    round_branch_name,
    round_trailers,
)
from fl_gitops.render import (
    Layout,
    RoundState,
    apply_changes,
    plan_changes,
    read_roster,
    read_round_state,
    render_experiment,
)

__all__ = ["rollback", "round_start_commit"]


def round_start_commit(repo: ConfigRepo, path: str, round_: int) -> str:
    """The newest commit that put the experiment at the start of round ``round_``.

    Raises:
        InputError: no commit ever started that round.
    """
    for commit in repo.log(path):
        if commit.trailers.get(ROUND_TRAILER) != str(round_):
            continue
        if commit.subject.endswith(("-> completed", "-> failed")):
            continue
        return str(commit.sha)
    raise InputError(f"{path}: no commit started round {round_}; see `fl-gitops history`")


def rollback(repo: ConfigRepo, path: str, round_: int) -> PublishResult:
    """Commit (and push) the experiment back at the start of ``round_``, as a new attempt."""
    path = path.strip("/")
    repo.sync()
    commit = round_start_commit(repo, path, round_)
    layout = Layout()

    def derive(root: Path) -> Change | None:
        exp = root / path
        repo.restore(path, commit)
        blueprint = load_blueprint(exp / layout.blueprint)
        state = read_round_state(exp)
        if state is None:
            raise InputError(f"{path}: the commit {commit[:12]} has no round state")
        record = read_roster(exp)
        if record is None:
            raise InputError(f"{path}: the commit {commit[:12]} has no roster record")
        roster = record.clusters
        again = RoundState(
            round=state.round, model_digest=state.model_digest, attempt=state.attempt + 1
        )
        secagg = None
        if blueprint.strategy.secure_aggregation is not None:
            # A new attempt of a secure round starts with fresh secrets (share keys kept).
            from fl_gitops.reconcile._secure import start_phase
            from fl_gitops.render import read_secagg

            start = start_phase(blueprint, again, roster, read_secagg(exp))
            again, roster, secagg = start.state, start.roster, start.record.to_json()
        tree = render_experiment(
            blueprint, roster=roster, state=again, roster_source="hub", secagg=secagg
        )
        apply_changes(root, tree, plan_changes(root, tree))
        return Change(
            message=f"fl({blueprint.name}): rollback to round {round_}",
            trailers=round_trailers(
                experiment=blueprint.name,
                round_=round_,
                model=state.model_digest,
                blueprint=blueprint.digest,
            ),
            body=f"Restored from {commit}; round {round_} runs again as attempt {again.attempt}.",
        )

    blueprint = load_blueprint(repo.root / path / layout.blueprint)
    if blueprint.gitops.mode != "pull-request":
        return repo.publish(derive)
    # In pull-request mode a rollback is a change like any other: it goes up for review.
    pr_cfg = blueprint.gitops.pull_request
    return repo.publish(
        derive,
        mode="pull-request",
        round_branch=f"{round_branch_name(blueprint.name, round_)}-rollback",
        pr=PullRequestSpec.from_blueprint(pr_cfg, os.environ) if pr_cfg else None,
    )

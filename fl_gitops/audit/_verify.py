"""One audit: the history walked, then the store checked and (optionally) every round redone.

The steps run in order of cost: Git first (signatures, trailers, records and round state
against each other), then one hash per model and per update, then, with ``reaggregate``,
one aggregation per round. Every problem goes on the report's line of the commit it was
found at; nothing stops at the first one, so one report says all that does not hold.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from fl_gitops.audit._contents import check_models, check_updates
from fl_gitops.audit._reaggregate import reaggregate
from fl_gitops.audit._report import Report
from fl_gitops.audit._walk import History, walk_history
from fl_gitops.errors import InputError
from fl_gitops.store import ModelStore

__all__ = ["verify_experiment"]


def verify_experiment(
    history: History,
    path: str,
    *,
    open_store: Callable[[str], ModelStore],
    store_uri: str | None = None,
    allowed_signers: str | None = None,
    reaggregate_rounds: bool = False,
) -> Report:
    """Audit the experiment at ``path`` from its history and its store.

    Args:
        history: the config repo (``gitops.HistoryReader``), reading signatures when
            ``allowed_signers`` is given.
        path: the experiment's directory in the repo.
        open_store: opens the model store for a URI.
        store_uri: the store to read; None takes the blueprint's at the tip.
        allowed_signers: the allowed-signers file the history was read with, for the
            report (None: signatures were not checked).
        reaggregate_rounds: also recompute every round's model and compare digests.

    Returns:
        The report: a line per round and per other commit that matters, with problems.

    Raises:
        InputError: nothing at ``path``, or no store to read (a blueprint that does not
            load at the tip and no ``store_uri``).
        GitError: git failed.
    """
    path = path.strip("/")
    walk = walk_history(history, path)
    uri = store_uri or (walk.blueprint.store.uri if walk.blueprint else None)
    if uri is None:
        raise InputError(
            f"--path {path}: the blueprint at the tip does not load, so it names no store; "
            "give --store"
        )
    store = open_store(uri)
    report = Report(
        experiment=walk.experiment or path.rsplit("/", 1)[-1],
        path=path,
        allowed_signers=allowed_signers,
        store=_shown(store),
        reaggregated=reaggregate_rounds,
        entries=walk.entries,
    )
    check_models(store, walk)
    for agg in walk.aggregations:
        if agg.superseded:
            agg.entry.notes.append(
                f"rolled back after this commit: the store may hold a later attempt's "
                f"updates of round {agg.round}, so these were not checked"
            )
            continue
        before = len(agg.entry.problems)
        check_updates(store, agg)
        if not reaggregate_rounds:
            continue
        if len(agg.entry.problems) > before:
            # A round whose updates are not what the hub reported cannot re-aggregate to
            # its model; saying so once per update is enough.
            agg.entry.notes.append("not re-aggregated: its updates are not the ones reported")
        else:
            reaggregate(store, agg)
    # A round's plain roster commit is worth a line only when something is wrong there.
    report.entries = [
        e
        for e in report.entries
        if e.kind != "commit" or e.problems or e.notes or not e.text.startswith("roster ")
    ]
    return report


def _shown(store: ModelStore) -> str:
    """The store's URI as its repr gives it: with any credentials redacted."""
    text = repr(store)
    inner = text.removeprefix("ModelStore(").removesuffix(")")
    try:
        value = ast.literal_eval(inner)
    except (ValueError, SyntaxError):
        return text
    return str(value)

"""The starter blueprint `fl-gitops init` writes: short, commented, valid as written.

A new user's first file should run (`validate`, `render`, `simulate` take it unchanged)
and teach: every line says what it means, and the settings a blueprint may leave out are
shown commented out at their defaults. Those defaults are read from the schema here, not
copied, so the comments cannot drift from what the loader fills in; a test uncomments
them all and checks that the blueprint renders the same bytes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fl_gitops.blueprint._schema import (
    API_VERSION,
    DNS1123_LABEL,
    KIND,
    MAX_NAME,
    STRATEGY_NAMES,
    default,
)
from fl_gitops.errors import InputError

__all__ = ["DEFAULT_NAME", "check_name", "starter_blueprint"]

DEFAULT_NAME = "my-experiment"
# The column comments start at, so that they read as a second column.
_COMMENT_COLUMN = 36
_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:-]*$")
_NOT_PLAIN = re.compile(r"^([0-9.eE+-]+|true|false|null|yes|no|on|off|~)$", re.IGNORECASE)


def check_name(name: str, *, flag: str = "--name") -> str:
    """``name`` if it can name an experiment (a DNS-1123 label of at most 40 characters).

    Raises:
        InputError: it cannot, naming ``flag`` (what the user typed) and what is expected.
    """
    if len(name) > MAX_NAME or not re.match(DNS1123_LABEL, name):
        shown = repr(name) if len(name) <= MAX_NAME + 2 else repr(name[:MAX_NAME]) + "..."
        raise InputError(
            f"{flag}: expected an experiment name (lowercase letters, digits and '-', "
            f"starting and ending alphanumeric, at most {MAX_NAME} characters), got {shown}"
        )
    return name


def starter_blueprint(name: str = DEFAULT_NAME) -> str:
    """The starter blueprint of experiment ``name``, as YAML text ending in a newline.

    Args:
        name: the experiment's name; its store prefix and Git path derive from it.

    Returns:
        A blueprint that `fl-gitops validate` accepts as written.

    Raises:
        InputError: ``name`` is not a valid experiment name.
    """
    check_name(name)
    strategies = " ".join(STRATEGY_NAMES)
    strategy = default("spec", "strategy")
    model = default("spec", "client", "model")
    data = default("spec", "client", "data")
    partition = ("spec", "client", "data", "partition")
    split = f"{default(*partition, 'kind')} with seed {default(*partition, 'seed')}"
    rows: list[tuple[str, str]] = [
        ("# An fl-gitops experiment. Every field is in docs/blueprint-reference.md, and", ""),
        ("# `fl-gitops schema` prints the JSON Schema for your editor. The lines that", ""),
        ("# start with '# ' below are optional settings at their defaults (remove '# '", ""),
        ("# to change one); the others are required. Nothing here is a secret.", ""),
        (f"apiVersion: {API_VERSION}", "the blueprint format"),
        (f"kind: {KIND}", "always Experiment"),
        ("metadata:", "the experiment's identity"),
        (f"  name: {name}", "every generated name derives from it"),
        _opt("  # namespace", ("metadata", "namespace"), "hub namespace: Placement, reconcile job"),
        ("spec:", "what to run, where, and how rounds reach Git"),
        ("  rounds: 10", "federated rounds to run"),
        ("  placement:", "an OCM PlacementSpec, verbatim: which clusters train"),
        ("    clusterSets: [fl-silos]", "ManagedClusterSets to choose from"),
        ("    numberOfClusters: 4", "how many (left out: every cluster that fits)"),
        ("  # completion:", "when a round is aggregated"),
        _opt(
            "  #   minClusters",
            ("spec", "completion", "minClusters"),
            "quorum once the timeout has passed",
        ),
        _opt(
            "  #   timeout",
            ("spec", "completion", "timeout"),
            "a round waits this long for all",
        ),
        _opt(
            "  #   retries",
            ("spec", "completion", "retries"),
            "a round below quorum is retried",
        ),
        ("  # strategy:", "how the clusters' updates are combined"),
        (f"  #   # the strategies: {strategies}", ""),
        _set("  #   name", strategy["name"], "one of the strategies above"),
        ("  client:", "the training Job each placed cluster runs every round"),
        (
            "    image: ghcr.io/example/fl-gitops:0.1.0",
            "runs `fl-gitops client`",
        ),
        _opt(
            "    # namespace",
            ("spec", "client", "namespace"),
            "namespace of the Job on each cluster",
        ),
        ("    # model:", "builtin: logreg, mlp or cnn; or entrypoint"),
        _set("    #   builtin", model["builtin"], "the small MLP, its own args"),
        ("    # data:", "builtin: digits or synthetic; or entrypoint"),
        _set("    #   builtin", data["builtin"], f"split {split}"),
        ("    # train:", "local training in each round"),
        _opt("    #   epochs", ("spec", "client", "train", "epochs"), "local epochs per round"),
        _opt("    #   batchSize", ("spec", "client", "train", "batchSize"), "mini-batch size"),
        _opt(
            "    #   optimizer",
            ("spec", "client", "train", "optimizer"),
            "sgd or adam, learning rate",
        ),
        ("  store:", "the model store: global models, updates, strategy state"),
        (
            f"    uri: s3://fl-models/{name}",
            "s3://bucket/prefix, file:///path or /path",
        ),
        ("  gitops:", "the config repo that every round is committed to"),
        (
            "    repo: https://git.example.com/platform/fl-config.git",
            "its Git URL",
        ),
        _opt("    # branch", ("spec", "gitops", "branch"), "the branch Argo CD syncs"),
        (f"    path: experiments/{name}", "this experiment's folder in the repo"),
        _opt(
            "    # mode",
            ("spec", "gitops", "mode"),
            "direct, or pull-request: open PRs",
        ),
    ]
    return "".join(_line(text, comment) for text, comment in rows)


def _opt(key: str, path: tuple[str, ...], meaning: str) -> tuple[str, str]:
    """An optional setting, commented out at its default (the schema's, at ``path``)."""
    return _set(key, default(*path), meaning)


def _set(key: str, value: Any, meaning: str) -> tuple[str, str]:
    """A setting commented out at ``value``, the default of the section it belongs to."""
    return f"{key}: {_flow(value)}", f"{meaning} (default: {_words(value)})"


def _line(text: str, comment: str) -> str:
    if not comment:
        return text + "\n"
    return f"{text.ljust(_COMMENT_COLUMN - 1)} # {comment}\n"


def _flow(value: Any) -> str:
    """``value`` as a YAML flow scalar or mapping that loads back to the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        plain = _PLAIN.match(value) and not _NOT_PLAIN.match(value)
        return value if plain else json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no flow form for {type(value).__name__}")


def _words(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_words(v)}" for k, v in value.items())
    return _flow(value)

"""Render a blueprint into the experiment's manifests: templates, safe YAML, writing, checking."""

from fl_gitops.render._env import SHIPPED_TEMPLATES, make_env
from fl_gitops.render._names import Layout, Names, model_uri
from fl_gitops.render._render import BOOTSTRAP_DIR, RenderedTree, RoundState, render_experiment
from fl_gitops.render._shardjob import (
    BACKOFF_LIMIT_PER_INDEX,
    INDEXED_JOBS,
    POD_FAILURE_POLICY,
    SHARD_CONTAINER,
    shard_job_labels,
    shard_job_manifest,
)
from fl_gitops.render._state import RosterRecord, read_roster, read_round_state, read_secagg
from fl_gitops.render._write import Changes, apply_changes, diff_text, plan_changes
from fl_gitops.render._yaml import YamlText, quote_scalar, yaml_block, yaml_document, yaml_inline

__all__ = [
    "BACKOFF_LIMIT_PER_INDEX",
    "BOOTSTRAP_DIR",
    "INDEXED_JOBS",
    "POD_FAILURE_POLICY",
    "SHARD_CONTAINER",
    "SHIPPED_TEMPLATES",
    "Changes",
    "Layout",
    "Names",
    "RenderedTree",
    "RosterRecord",
    "RoundState",
    "YamlText",
    "apply_changes",
    "diff_text",
    "make_env",
    "model_uri",
    "plan_changes",
    "quote_scalar",
    "read_roster",
    "read_round_state",
    "read_secagg",
    "render_experiment",
    "shard_job_labels",
    "shard_job_manifest",
    "yaml_block",
    "yaml_document",
    "yaml_inline",
]

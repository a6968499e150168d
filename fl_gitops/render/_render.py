"""Compile a blueprint, a round state and a roster into the experiment's files.

A pure function of its inputs (no clock, no environment): the same inputs give the same
bytes, which is what lets `render --check` act like `terraform fmt -check` and lets the
reconcile job skip commits that change nothing. Per-cluster output is rendered from the
templates without being parsed back: at 10,000 clusters parsing is the slow part.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from fl_gitops.blueprint import Blueprint
from fl_gitops.contracts import API_VERSION
from fl_gitops.errors import TemplateError
from fl_gitops.labels import EXPERIMENT_LABEL, ROUND_LABEL
from fl_gitops.render._env import SHIPPED_TEMPLATES, make_env
from fl_gitops.render._names import Layout, Names, model_uri
from fl_gitops.render._size import check_work_sizes
from fl_gitops.render._stamp import stamped_works
from fl_gitops.render._yaml import YamlText, yaml_document
from fl_gitops.reports import (
    REPORT_KEYS,
    RESULT_CONFIGMAP_ENV,
    SECAGG_KEY,
    SECAGG_PHASES,
    UNCLIPPED_KEY,
)
from fl_gitops.secagg._loop import SecAggRound, params_of

__all__ = ["BOOTSTRAP_DIR", "RenderedTree", "RoundState", "render_experiment"]

BOOTSTRAP_DIR = "bootstrap"
_ROUND_CONFIG_PATH = "/etc/fl-gitops/round/round.json"
# The cluster's secure-aggregation Secret, as the Job finds it (client/secure.py reads it).
SECAGG_SECRET_ENV = "FL_SECAGG_SECRET"
# Where the reconcile CronJob mounts the signing key's Secret.
SIGNING_DIR = "/etc/fl-gitops/signing"
PHASES = ("Running", "Completed", "Failed")


@dataclass(frozen=True)
class RoundState:
    """Where the experiment stands: the round being trained and the model it starts from.

    ``clip_norm`` is the round's clip when the clusters clip their own updates
    (``dp.clipping: client``) and it is not the blueprint's ``clipNorm`` (adaptive
    clipping after round 1): it goes into each round config, and into the round-state
    ConfigMap so that a re-render finds it. None otherwise.
    """

    round: int
    model_digest: str
    phase: str = "Running"
    message: str = ""
    attempt: int = 1
    clip_norm: float | None = None
    # With secure aggregation: the round's phase (``reports.SECAGG_PHASES``), None otherwise.
    secagg: str | None = None

    @property
    def step(self) -> str:
        """The Job name's suffix of the phase: a secure round's short Jobs have their own."""
        return self.secagg if self.secagg in ("keys", "share", "reveal") else ""

    def __post_init__(self) -> None:
        if self.round < 1:
            raise ValueError(f"round must be >= 1, got {self.round}")
        if self.attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {self.attempt}")
        if self.phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {self.phase!r}")
        if self.clip_norm is not None and not 0 < self.clip_norm < float("inf"):
            raise ValueError(f"clip_norm must be a finite number > 0, got {self.clip_norm!r}")
        if self.secagg is not None and self.secagg not in SECAGG_PHASES:
            raise ValueError(f"secagg must be one of {SECAGG_PHASES}, got {self.secagg!r}")


@dataclass(frozen=True)
class RenderedTree:
    """Files to write, keyed by path relative to the output directory, sorted."""

    experiment_dir: str
    files: dict[str, bytes]
    roster: tuple[str, ...]
    layout: Layout = field(default_factory=Layout)
    bootstrap: bool = False

    def owned(self, path: str) -> bool:
        """Whether render may rewrite or delete ``path`` (relative to the output dir)."""
        if self.bootstrap and path.startswith(f"{BOOTSTRAP_DIR}/"):
            return True
        prefix = f"{self.experiment_dir}/"
        return path.startswith(prefix) and self.layout.owned(path[len(prefix) :])

    def owned_dirs(self) -> list[str]:
        """Directories whose files render owns (to find stale ones)."""
        dirs = [self.experiment_dir]
        if self.bootstrap:
            dirs.append(BOOTSTRAP_DIR)
        return dirs


def render_experiment(
    blueprint: Blueprint,
    *,
    roster: Sequence[str],
    state: RoundState,
    decision_pages: Sequence[Mapping[str, Any]] = (),
    roster_source: str = "preview",
    blueprint_bytes: bytes | None = None,
    template_dir: str | Path | None = None,
    bootstrap: bool = False,
    health_checks: Mapping[str, str] | None = None,
    secagg: Mapping[str, Any] | None = None,
) -> RenderedTree:
    """Render the experiment tree.

    Args:
        blueprint: the validated blueprint.
        roster: the clusters of this round (one ManifestWork each), any order.
        state: the round and its global model.
        decision_pages: PlacementDecision objects for the never-synced preview.
        roster_source: where the roster came from, recorded in ``roster.yaml``:
            ``preview`` (offline placement over an inventory) or ``hub`` (the hub's
            PlacementDecisions, which the reconcile job trusts over a preview).
        blueprint_bytes: the blueprint file's bytes, copied into the tree so the
            reconcile job finds it beside what it rendered.
        template_dir: the user's templates, overriding shipped ones by name.
        bootstrap: also render the hub bootstrap under ``bootstrap/``.
        health_checks: argocd-cm keys to Lua scripts, for the bootstrap.
        secagg: with secure aggregation, the round's record (``secagg.yaml``'s document,
            ``SecAggRound.to_json``), whose public values each round config carries; None
            renders the first phase's.

    Raises:
        TemplateError: a template failed (names the template and line).
        WorkTooLarge: a cluster's ManifestWork is over OCM's manifest size limit, which
            the hub would refuse it for (names the cluster and the size).
    """
    env = make_env(template_dir)
    layout = Layout()
    secure = blueprint.strategy.secure_aggregation
    if secure is not None and state.phase == "Running" and state.secagg is None:
        state = dataclasses.replace(state, secagg="keys")  # a secure experiment's first Job
    names = Names(blueprint.name, blueprint.namespace, state.round, state.attempt, state.step)
    roster = tuple(sorted(set(roster)))
    secure_record: SecAggRound | None = None
    if secure is not None and state.phase == "Running":
        secure_record = (
            SecAggRound(state.round, state.attempt, state.secagg or "keys")
            if secagg is None
            else SecAggRound.from_json(secagg, source=layout.secagg)
        )
        if (secure_record.round, secure_record.attempt, secure_record.phase) != (
            state.round,
            state.attempt,
            state.secagg,
        ):
            raise TemplateError(
                f"secagg.yaml is round {secure_record.round} attempt {secure_record.attempt} phase "
                f"{secure_record.phase}, the round state round {state.round} attempt "
                f"{state.attempt} phase {state.secagg}"
            )
    root = blueprint.gitops.path
    files: dict[str, bytes] = {}
    ctx = _shared_context(blueprint, names, state)

    def put(rel: str, text: str) -> None:
        files[posixpath.join(root, rel)] = text.encode("utf-8")

    put(layout.placement, _render(env, "placement.yaml.j2", ctx))
    put(layout.round_state, _render(env, "round-state.yaml.j2", ctx))
    put(layout.reconcile_rbac, _render(env, "reconcile-rbac.yaml.j2", ctx))
    put(layout.reconcile_cronjob, _render(env, "reconcile-cronjob.yaml.j2", ctx))
    put(layout.application, _render(env, "application.yaml.j2", ctx))
    resources = [layout.placement, layout.round_state, layout.reconcile_rbac]
    resources.append(layout.reconcile_cronjob)
    if state.phase == "Running":
        work_template = _template(env, "manifestwork.yaml.j2")
        report = _report_context(blueprint, names)
        base = _round_config_base(blueprint, state)
        if secure is not None:
            assert secure_record is not None
            section = secure_record.config_section(
                params_of(secure), blueprint.influence.max_num_examples
            )
            section["final"] = state.round >= blueprint.rounds
            base["secureAggregation"] = section
            put(
                layout.secagg,
                yaml_document(
                    {"apiVersion": API_VERSION, "kind": "SecAggRound", **secure_record.to_json()}
                ),
            )
        config_text = _round_config_text(base, len(roster))
        client_env = _ClientEnv(blueprint, names)

        def render_work(cluster: str, index: int) -> str:
            return _render_template(
                work_template,
                ctx,
                cluster=YamlText(cluster),
                round_config=_fill_round_config(config_text, cluster, index),
                env=client_env(cluster),
                report=report,
            )

        shipped = Path(work_template.filename or "").parent == SHIPPED_TEMPLATES
        for cluster, text in zip(
            roster, stamped_works(render_work, roster, shipped=shipped), strict=True
        ):
            rel = layout.work(cluster)
            put(rel, text)
            resources.append(rel)
        works = {
            path: files[path] for path in (posixpath.join(root, layout.work(c)) for c in roster)
        }
        check_work_sizes(works, round_=state.round)
    ctx_k = {"resources": resources, "bootstrap": False}
    put(layout.kustomization, _render(env, "kustomization.yaml.j2", ctx_k))
    if state.phase == "Running":
        record = {
            "apiVersion": API_VERSION,
            "kind": "Roster",
            "round": state.round,
            "attempt": state.attempt,
            "source": roster_source,
            "clusters": list(roster),
        }
        if state.secagg is not None:
            # Each phase's commit rewrites the roster: the phase's timeout starts there.
            record["step"] = state.secagg
        put(layout.roster, yaml_document(record))
    if decision_pages:
        put(layout.preview, "---\n".join(yaml_document(page) for page in decision_pages))
    if blueprint_bytes is not None:
        files[posixpath.join(root, layout.blueprint)] = blueprint_bytes
    if bootstrap:
        files.update(_render_bootstrap(env, blueprint, ctx, health_checks or {}))
    return RenderedTree(
        experiment_dir=root,
        files=dict(sorted(files.items())),
        roster=roster,
        layout=layout,
        bootstrap=bootstrap,
    )


def _template(env: jinja2.Environment, name: str) -> jinja2.Template:
    try:
        return env.get_template(name)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.filename or name}:{exc.lineno}: {exc.message}") from None
    except jinja2.TemplateNotFound:
        raise TemplateError(f"template {name!r} not found") from None


def _render(env: jinja2.Environment, name: str, ctx: Mapping[str, Any]) -> str:
    return _render_template(_template(env, name), ctx)


def _render_template(template: jinja2.Template, ctx: Mapping[str, Any], **extra: Any) -> str:
    try:
        return template.render(ctx, **extra)
    except TemplateError as exc:
        raise TemplateError(f"{template.name}: {exc}") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{template.name}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{template.name}: {exc}") from None


def _labels(blueprint: Blueprint) -> dict[str, str]:
    labels = dict(blueprint.labels)
    labels.update(
        {
            "app.kubernetes.io/managed-by": "fl-gitops",
            "app.kubernetes.io/part-of": "fl-gitops",
            EXPERIMENT_LABEL: blueprint.name,
        }
    )
    return labels


def _shared_context(blueprint: Blueprint, names: Names, state: RoundState) -> dict[str, Any]:
    labels = _labels(blueprint)
    round_labels = {**labels, ROUND_LABEL: str(state.round)}
    gitops = blueprint.gitops
    secret_mounts = []
    reconcile_env = [{"name": "HOME", "value": "/tmp"}]
    if gitops.credentials_secret_ref:
        secret_mounts.append(
            {
                "volume": "git-credentials",
                "path": "/etc/fl-gitops/git",
                "secret": gitops.credentials_secret_ref,
                "mode": 0o440,
            }
        )
        reconcile_env.append({"name": "FL_GIT_CREDENTIALS_DIR", "value": "/etc/fl-gitops/git"})
    token_ref = gitops.pull_request.get("tokenSecretRef")
    if token_ref:
        secret_mounts.append(
            {
                "volume": "forge-token",
                "path": "/etc/fl-gitops/forge",
                "secret": token_ref,
                "mode": 0o440,
            }
        )
        reconcile_env.append({"name": "FL_FORGE_TOKEN_DIR", "value": "/etc/fl-gitops/forge"})
    if gitops.signing_secret_ref:
        # Only the key, owner-read only; the pass signs from a 0600 copy of its own.
        secret_mounts.append(
            {
                "volume": "signing-key",
                "path": SIGNING_DIR,
                "secret": gitops.signing_secret_ref,
                "mode": 0o400,
                "files": [{"key": "ssh-privatekey", "path": "ssh-privatekey", "mode": 0o400}],
            }
        )
        reconcile_env.append(
            {"name": "FL_GIT_SIGNING_KEY_FILE", "value": f"{SIGNING_DIR}/ssh-privatekey"}
        )
    reconcile_args = ["reconcile", "--repo", gitops.repo, "--branch", gitops.branch]
    reconcile_args += ["--path", gitops.path, "--once"]
    data_spec = blueprint.client["data"]
    return {
        "names": {
            "placement": YamlText(names.placement),
            "work": YamlText(names.work),
            "job": YamlText(names.job),
            "round_state": YamlText(names.round_state),
            "reconcile": YamlText(names.reconcile),
            "aggregation": YamlText(names.aggregation),
            "works_reader": YamlText(names.works_reader),
            "application": YamlText(names.application),
        },
        "namespace": blueprint.namespace,
        "labels": labels,
        "base_labels": {
            "app.kubernetes.io/managed-by": "fl-gitops",
            "app.kubernetes.io/part-of": "fl-gitops",
        },
        "round_labels": round_labels,
        "placement": blueprint.placement,
        "client": blueprint.client,
        "store_secret": blueprint.store.secret_ref or "",
        "data_volume": data_spec.get("volume"),
        "round_state": {
            "experiment": blueprint.name,
            "round": str(state.round),
            "attempt": str(state.attempt),
            "rounds": str(blueprint.rounds),
            "phase": state.phase,
            "message": state.message,
            "globalModelDigest": state.model_digest,
            "globalModelUri": model_uri(blueprint.store.uri, state.model_digest),
            "blueprintDigest": blueprint.digest,
            **({} if state.clip_norm is None else {"clipNorm": repr(float(state.clip_norm))}),
            **({} if state.secagg is None else {"secureAggregation": state.secagg}),
        },
        "reconcile": {
            "schedule": blueprint.reconcile.schedule,
            "image": blueprint.reconcile.image,
            "imagePullSecrets": [{"name": n} for n in blueprint.reconcile.image_pull_secrets],
            "activeDeadlineSeconds": blueprint.reconcile.active_deadline_seconds,
        },
        "aggregation": {"shards": blueprint.aggregation.shards},
        "client_pull_secrets": [{"name": n} for n in blueprint.client.get("imagePullSecrets", [])],
        "reconcile_args": reconcile_args,
        "reconcile_env": reconcile_env,
        "secret_mounts": secret_mounts,
        "gitops": {"repo": gitops.repo, "branch": gitops.branch, "path": gitops.path},
        "argocd": {
            "namespace": blueprint.argocd.namespace,
            "project": blueprint.argocd.project,
            "server": blueprint.argocd.server,
        },
    }


def _round_config_base(blueprint: Blueprint, state: RoundState) -> dict[str, Any]:
    client = blueprint.client
    data = {k: v for k, v in client["data"].items() if k != "volume"}
    if "volume" in client["data"]:
        data["path"] = client["data"]["volume"]["mountPath"]
    return {
        "apiVersion": API_VERSION,
        "kind": "RoundConfig",
        "experiment": blueprint.name,
        "round": state.round,
        "store": {"uri": blueprint.store.uri},
        "globalModel": {
            "digest": state.model_digest,
            "uri": model_uri(blueprint.store.uri, state.model_digest),
        },
        "model": client["model"],
        "data": data,
        "train": client["train"],
        "strategy": {"name": blueprint.strategy.name, "options": blueprint.strategy.options},
        **_client_clip(blueprint, state),
    }


def _client_clip(blueprint: Blueprint, state: RoundState) -> dict[str, Any]:
    """The round config's ``dp`` part: with client-side clipping, the clip each cluster
    clips its update to (the state's, else the blueprint's clipNorm); nothing otherwise,
    so that a server-side round's config keeps its bytes."""
    dp = blueprint.strategy.dp
    if not dp or dp.get("clipping") != "client":
        return {}
    clip = state.clip_norm if state.clip_norm is not None else float(dp["clipNorm"])
    return {"dp": {"clipping": "client", "clipNorm": float(clip)}}


_CLUSTER_SLOT = "@@fl-gitops-cluster@@"
_INDEX_SLOT = "@@fl-gitops-roster-index@@"


def _round_config_text(base: dict[str, Any], size: int) -> str:
    """The round config as JSON text with slots for the per-cluster values.

    Serialized once per render and filled per cluster, since only the cluster's name and
    place differ; the result is exactly what `json.dumps` of the full object gives.
    """
    config = dict(base, cluster=_CLUSTER_SLOT, rosterIndex=_INDEX_SLOT, rosterSize=size)
    return json.dumps(config, sort_keys=True, indent=2, ensure_ascii=True) + "\n"


def _fill_round_config(text: str, cluster: str, index: int) -> str:
    return text.replace(f'"{_CLUSTER_SLOT}"', json.dumps(cluster), 1).replace(
        f'"{_INDEX_SLOT}"', str(index), 1
    )


def _report_context(blueprint: Blueprint, names: Names) -> dict[str, Any]:
    """What the work needs for the authenticated channel: the result ConfigMap, the Job's
    ServiceAccount (the blueprint's, or one rendered for it), the Role that lets it write
    that one ConfigMap, and a feedback rule per reported key."""
    secure = blueprint.strategy.secure_aggregation is not None
    return {
        "secure": secure,
        "secret": YamlText(names.secagg_secret),
        "result": YamlText(names.result),
        "account": blueprint.client.get("serviceAccountName") or YamlText(names.client_account),
        "reporter": YamlText(names.reporter),
        "feedback": [{"name": key, "path": f".data.{key}"} for key in _report_keys(blueprint)],
    }


def _report_keys(blueprint: Blueprint) -> tuple[str, ...]:
    """The result ConfigMap's keys the work reads back: the clip bit too when the
    clusters clip their own updates (only then, so other works keep their bytes)."""
    dp = blueprint.strategy.dp
    if dp and dp.get("clipping") == "client":
        return (*REPORT_KEYS, UNCLIPPED_KEY)
    if blueprint.strategy.secure_aggregation is not None:
        return (*REPORT_KEYS, SECAGG_KEY)
    return REPORT_KEYS


def _client_env(blueprint: Blueprint, names: Names, cluster: str) -> list[dict[str, str]]:
    return _ClientEnv(blueprint, names)(cluster)


class _ClientEnv:
    """The client container's env per cluster, its shared entries built once per render.

    Every cluster's list holds the same entry objects but ``FL_CLUSTER``'s, so that the
    environment's memoized ``yaml_block`` writes each shared entry once, not per cluster.
    """

    def __init__(self, blueprint: Blueprint, names: Names) -> None:
        self._head = [
            {"name": "FL_ROUND_CONFIG", "value": _ROUND_CONFIG_PATH},
            {
                "name": RESULT_CONFIGMAP_ENV,
                "value": f"{blueprint.client['namespace']}/{names.result}",
            },
        ]
        if blueprint.strategy.secure_aggregation is not None:
            self._head.append(
                {
                    "name": SECAGG_SECRET_ENV,
                    "value": f"{blueprint.client['namespace']}/{names.secagg_secret}",
                }
            )
        self._tail = [
            {"name": "FL_EXPERIMENT", "value": blueprint.name},
            {"name": "FL_ROUND", "value": str(names.round)},
            {"name": "HOME", "value": "/tmp"},
            *blueprint.client.get("env", []),
        ]

    def __call__(self, cluster: str) -> list[dict[str, str]]:
        return [*self._head, {"name": "FL_CLUSTER", "value": cluster}, *self._tail]


def _render_bootstrap(
    env: jinja2.Environment,
    blueprint: Blueprint,
    ctx: Mapping[str, Any],
    health_checks: Mapping[str, str],
) -> dict[str, bytes]:
    experiments_root = posixpath.dirname(blueprint.gitops.path) or "."
    glob = "*" if experiments_root == "." else f"{experiments_root}/*"
    cluster_sets = sorted(set(blueprint.placement.get("clusterSets") or []))
    bctx = dict(
        ctx,
        experiments_glob=glob,
        appset_app_name="fl-{{.path.basename}}",
        appset_app_path="{{.path.path}}",
        health_checks=dict(sorted(health_checks.items())),
        cluster_sets=cluster_sets,
        # The AppProject lets the config repo create the works readers of every
        # experiment in this hub namespace, and no other cluster-scoped object.
        works_reader_glob=Names("*", blueprint.namespace, 0).works_reader,
    )
    out = {
        "applicationset.yaml": _render(env, "bootstrap/applicationset.yaml.j2", bctx),
        "appproject.yaml": _render(env, "bootstrap/appproject.yaml.j2", bctx),
        "argocd-cm.yaml": _render(env, "bootstrap/argocd-cm.yaml.j2", bctx),
    }
    if cluster_sets:
        out["clustersetbindings.yaml"] = _render(env, "bootstrap/clustersetbindings.yaml.j2", bctx)
    kctx = {"resources": sorted(out), "bootstrap": True}
    out["kustomization.yaml"] = _render(env, "kustomization.yaml.j2", kctx)
    return {f"{BOOTSTRAP_DIR}/{name}": text.encode("utf-8") for name, text in sorted(out.items())}

"""Load a blueprint file into a `Blueprint`, or fail with every problem located.

Three layers, each adding what the previous cannot see: YAML (syntax, duplicates, bombs),
the JSON Schema (shape, types, names, unknown fields), then checks that span fields
(quorum versus cluster count, the partition's parameters, the strategy's options).
"""

from __future__ import annotations

import hashlib
import re
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from fl_gitops.blueprint._messages import collect_errors, dotted, make_validator, raise_first
from fl_gitops.blueprint._model import (
    Aggregation,
    ArgoCD,
    Blueprint,
    Completion,
    GitOps,
    Influence,
    Reconcile,
    Store,
    Strategy,
)
from fl_gitops.blueprint._schema import DP_INNER, DP_STRATEGY, base_schema, default
from fl_gitops.blueprint._yaml import Document, load_document, read_bounded
from fl_gitops.errors import BlueprintError, InputError, StrategyOptionsError

__all__ = ["blueprint_schema", "load_blueprint", "parse_duration", "with_defaults"]

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration (``1h30m``); the schema has checked its form."""
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


@cache
def _placement_spec_schema() -> dict[str, Any]:
    from fl_gitops.validate import crd_schema

    spec: dict[str, Any] = crd_schema("cluster.open-cluster-management.io/v1beta1", "Placement")[
        "properties"
    ]["spec"]
    return spec


@cache
def _validators() -> tuple[Any, Any]:
    return make_validator(base_schema()), make_validator(_placement_spec_schema())


def blueprint_schema() -> dict[str, Any]:
    """The full JSON Schema, with the real PlacementSpec schema merged in (for editors)."""
    schema = base_schema()
    placement = dict(_placement_spec_schema())
    placement["description"] = (
        "An OCM PlacementSpec, verbatim (cluster.open-cluster-management.io/v1beta1)."
    )
    schema["properties"]["spec"]["properties"]["placement"] = placement
    return schema


def load_blueprint(path: str | Path, *, text: bytes | None = None) -> Blueprint:
    """Read, validate and type a blueprint.

    Args:
        path: the blueprint file (its name appears in every error).
        text: the file's bytes, when the caller already has them.

    Returns:
        The validated blueprint, defaults filled.

    Raises:
        BlueprintError: the first problem, with ``.more`` holding the others, each as
            ``file:line:col: field: message``.
    """
    raw_bytes = read_bounded(path) if text is None else text
    return _parse(str(path), raw_bytes)


@lru_cache(maxsize=16)
def _parse(path: str, raw_bytes: bytes) -> Blueprint:
    """The parse of one file's bytes, remembered: a long-running loop (the simulation, a
    watching reconcile job) reads the same blueprint every pass, and ruamel is slow.
    A Blueprint is frozen; callers treat its mappings as read-only."""
    doc = load_document(path, text=raw_bytes)
    data = doc.data
    if not isinstance(data, dict):
        raise BlueprintError(
            f"the document is {_a(data)}; expected a mapping (an Experiment)",
            file=doc.file,
            line=1,
            column=1,
        )
    whole, placement = _validators()
    errors = collect_errors(whole, data, doc)
    spec = data.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("placement"), dict):
        errors += collect_errors(placement, spec["placement"], doc, prefix=("spec", "placement"))
        errors.sort(key=lambda e: (e.line, e.column, e.field))
    raise_first(errors)
    raise_first(_placement_errors(data["spec"]["placement"], doc))
    filled = with_defaults(data)
    raise_first(_cross_field_errors(filled, doc, written=data))
    return _build(filled, data, doc, hashlib.sha256(raw_bytes).hexdigest())


def _a(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    kind = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
        type(value), type(value).__name__
    )
    shown = repr(value)
    return f"a {kind} ({shown if len(shown) <= 40 else shown[:37] + '...'})"


_PLACEMENT_FIELD = re.compile(r"^(spec(?:\.[A-Za-z][A-Za-z0-9]*|\[\d+\])*): (.*)$", re.DOTALL)
_FIELD_STEP = re.compile(r"\.([A-Za-z][A-Za-z0-9]*)|\[(\d+)\]")


def _placement_errors(placement: dict[str, Any], doc: Document) -> list[BlueprintError]:
    """The checks `render` makes of the Placement before it looks at any cluster.

    The vendored CRD schema leaves operators as free strings (the API server takes
    ``in``; OCM then marks the Placement misconfigured and selects nothing), so the
    offline evaluator's own checks run here too, located at the field they name.
    """
    from fl_gitops.placement import check_placement

    try:
        check_placement(placement)
    except InputError as exc:
        match = _PLACEMENT_FIELD.match(str(exc))
        if match is None:
            return [_error(doc, ("spec", "placement"), str(exc))]
        steps: list[str | int] = [
            name if name else int(index) for name, index in _FIELD_STEP.findall(match[1])
        ]
        return [_error(doc, ("spec", "placement", *steps), match[2])]
    return []


def _error(doc: Document, path: tuple[str | int, ...], message: str) -> BlueprintError:
    line, col = doc.where(path)
    return BlueprintError(message, file=doc.file, line=line, column=col, field=dotted(path))


def _cross_field_errors(
    data: dict[str, Any], doc: Document, *, written: dict[str, Any]
) -> list[BlueprintError]:
    """Rules that span fields, over the document with its defaults filled (``data``);
    ``written`` is the document as the user wrote it, so a message can say when a value
    it names is a default the user never wrote."""
    spec = data["spec"]
    errors: list[BlueprintError] = []
    wanted = spec["placement"].get("numberOfClusters")
    quorum = spec["completion"]["minClusters"]
    if isinstance(wanted, int) and quorum > wanted:
        said = "minClusters" in (written["spec"].get("completion") or {})
        errors.append(
            _error(
                doc,
                ("spec", "completion", "minClusters")
                if said
                else ("spec", "placement", "numberOfClusters"),
                f"minClusters is {quorum}{'' if said else ' (the default)'} but "
                f"placement.numberOfClusters is {wanted}; expected minClusters <= "
                "numberOfClusters"
                + ("" if said else f"; set spec.completion.minClusters to at most {wanted}"),
            )
        )
    data_spec = spec["client"]["data"]
    partition = data_spec.get("partition")
    if partition is not None:
        kind = partition["kind"]
        needs = {"dirichlet": "alpha", "shards": "shardsPerCluster"}.get(kind)
        if needs and needs not in partition:
            errors.append(
                _error(
                    doc,
                    ("spec", "client", "data", "partition"),
                    f"partition kind {kind!r} needs {needs!r}",
                )
            )
        extra = {"alpha", "shardsPerCluster"} - {needs} & set(partition)
        for name in sorted(extra):
            errors.append(
                _error(
                    doc,
                    ("spec", "client", "data", "partition", name),
                    f"{name!r} does not apply to partition kind {kind!r}",
                )
            )
        if "entrypoint" in data_spec:
            errors.append(
                _error(
                    doc,
                    ("spec", "client", "data", "partition"),
                    "a partition applies to builtin data only; "
                    "an entrypoint reads each cluster's own data",
                )
            )
    if "entrypoint" in data_spec and "volume" not in data_spec:
        errors.append(
            _error(
                doc,
                ("spec", "client", "data"),
                "entrypoint data is read from a volume on each cluster; expected 'volume'",
            )
        )
    mode = spec["gitops"]["mode"]
    if mode != "pull-request" and "pullRequest" in spec["gitops"]:
        errors.append(
            _error(
                doc,
                ("spec", "gitops", "pullRequest"),
                "pullRequest settings need mode: pull-request",
            )
        )
    errors += _secret_env_errors(spec, doc)
    errors += _strategy_errors(spec, doc, written=written["spec"])
    errors += _secure_aggregation_errors(spec, doc)
    return sorted(errors, key=lambda e: (e.line, e.column))


# Words in a variable's name that say its value is a secret, matched word by word (split
# on "_", "-", "." and camelCase), so that KEYBOARD_LAYOUT or PASSTHROUGH pass.
_SECRET_WORDS = frozenset(
    {
        "TOKEN", "TOKENS", "PASSWORD", "PASSWORDS", "PASSWD", "PASS", "PASSPHRASE",
        "KEY", "KEYS", "APIKEY", "ACCESSKEY", "SECRETKEY", "PRIVATEKEY",
        "SECRET", "SECRETS", "CREDENTIAL", "CREDENTIALS", "CREDS",
    }
)  # fmt: skip
_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def secret_word(name: str) -> str | None:
    """The word of an environment variable's name that marks it as a secret, if any."""
    for part in re.split(r"[_.\-]+", name):
        for word in _WORD_RE.findall(part):
            upper = str(word).upper()
            if upper in _SECRET_WORDS:
                return upper
    return None


def _secret_env_errors(spec: dict[str, Any], doc: Document) -> list[BlueprintError]:
    """A plaintext value under a secret's name would be committed to Git and rendered
    into every ManifestWork: refused, with the form that keeps it on the cluster."""
    errors = []
    for index, item in enumerate(spec["client"].get("env") or []):
        name = item.get("name")
        if "value" not in item or not isinstance(name, str):
            continue
        word = secret_word(name)
        if word is None:
            continue
        errors.append(
            _error(
                doc,
                ("spec", "client", "env", index, "value"),
                f"{name} is named as a secret ({word}) but has a plaintext value, which would "
                "be committed to Git and rendered into every ManifestWork; keep it in a "
                "Secret on each cluster and write `valueFrom: {secretKeyRef: {name: "
                "<secret>, key: <key>}}` instead of `value`",
            )
        )
    return errors


def _strategy_errors(
    spec: dict[str, Any], doc: Document, *, written: dict[str, Any]
) -> list[BlueprintError]:
    """The options against the named strategy's own schema, located like schema errors."""
    from fl_gitops.aggregate.strategies import options_schema, validate_options

    strategy = spec["strategy"]
    name = strategy["name"]
    options = strategy.get("options") or {}
    where = ("spec", "strategy", "options")
    errors = collect_errors(
        make_validator(options_schema(name)),
        options,
        doc,
        prefix=where,
        noun="option",
        takes_none=f"strategy {name!r} takes no options",
    )
    if errors:
        return errors
    try:
        resolved = validate_options(name, options)
    except StrategyOptionsError as exc:  # a check beyond the schema
        return [_error(doc, where, str(exc))]
    if strategy.get("dp") is not None and name not in DP_INNER:
        return [
            _error(
                doc,
                ("spec", "strategy", "dp"),
                f"strategy {name!r} cannot run under dp: its noise is calibrated for a mean; "
                f"expected one of {', '.join(DP_INNER)}, or no dp block",
            )
        ]
    if strategy.get("dp") is not None:
        errors = _dp_errors(spec, doc)
        if errors:
            return errors
    byzantine = resolved.get("f") if name in ("krum", "multikrum") else None
    quorum = spec["completion"]["minClusters"]
    if isinstance(byzantine, int) and quorum < 2 * byzantine + 3:
        said = "minClusters" in (written.get("completion") or {})
        return [
            _error(
                doc,
                ("spec", "completion", "minClusters") if said else ("spec", "strategy"),
                f"{name} with f={byzantine} needs at least {2 * byzantine + 3} updates "
                f"(n >= 2f + 3) but minClusters is {quorum}{'' if said else ' (the default)'}; "
                "raise minClusters or lower strategy.options.f",
            )
        ]
    return []


def _dp_errors(spec: dict[str, Any], doc: Document) -> list[BlueprintError]:
    """The dp block's rules beyond the schema: the count's noise must leave budget for the
    sum (adaptive clipping), and one round must fit in targetEpsilon."""
    from fl_gitops.aggregate.strategies import dp as dp_strategy
    from fl_gitops.aggregate.strategies._accountant import epsilon

    where = ("spec", "strategy", "dp")
    dp = _dp_block(spec)
    assert dp is not None
    z = float(dp["noiseMultiplier"])
    adaptive = dp.get("adaptive")
    if adaptive is not None:
        said = "clippedCountStddev" in (spec["strategy"]["dp"].get("adaptive") or {})
        try:
            dp_strategy.sum_noise_multiplier(z, adaptive["clippedCountStddev"])
        except ValueError as exc:
            return [
                _error(
                    doc,
                    (*where, "adaptive", "clippedCountStddev") if said else (*where, "adaptive"),
                    f"{exc}{'' if said else ' (the default: expected clusters per round / 20)'}; "
                    "raise clippedCountStddev above it, or lower noiseMultiplier",
                )
            ]
    shards = (spec.get("aggregation") or {}).get("shards", 1)
    if dp["clipping"] == "client" and isinstance(shards, int) and shards > 1:
        return [
            _error(
                doc,
                (*where, "clipping"),
                "client-side clipping is not built for sharded aggregation "
                f"(aggregation.shards is {shards}); use clipping: server, or shards: 1",
            )
        ]
    target = dp.get("targetEpsilon")
    if target is not None:
        one = epsilon([(z, float(dp["samplingRate"]))], float(dp["delta"]))
        if one > target:
            return [
                _error(
                    doc,
                    (*where, "targetEpsilon"),
                    f"one round already spends epsilon {one:.4g} > targetEpsilon {target:g} "
                    f"(noiseMultiplier {z:g}, samplingRate {dp['samplingRate']:g}, "
                    f"delta {dp['delta']:g}); raise targetEpsilon or noiseMultiplier",
                )
            ]
    return []


# Strategies whose combine is a weighted sum of the updates (then a server step on the
# mean): the only ones a masked sum can feed. The robust ones need each update apart.
SECURE_STRATEGIES = DP_INNER


def _secure_aggregation_errors(spec: dict[str, Any], doc: Document) -> list[BlueprintError]:
    """What secure aggregation cannot run with, and parameters it cannot run on: a
    strategy that needs each update apart (the hub sees only their sum), sharded
    aggregation, hub-side DP or a norm bound (both need each update in the clear), a
    threshold above the fleet or at most half the holders, a grid under 4096 levels."""
    from fl_gitops.secagg import SecAggParams

    raw = spec["strategy"].get("secureAggregation")
    if raw is None:
        return []
    where = ("spec", "strategy", "secureAggregation")
    name = spec["strategy"]["name"]
    if name not in SECURE_STRATEGIES:
        return [
            _error(
                doc,
                ("spec", "strategy", "name"),
                f"strategy {name!r} cannot run with secureAggregation: it needs each "
                "cluster's update apart, and the hub sees only their masked sum; expected "
                f"one of {', '.join(SECURE_STRATEGIES)}, or no secureAggregation block",
            )
        ]
    shards = spec["aggregation"]["shards"]
    if shards > 1:
        return [
            _error(
                doc,
                ("spec", "aggregation", "shards"),
                f"secureAggregation is not built for sharded aggregation (shards is {shards}): "
                "the sum is unmasked in the reconcile pod; set shards: 1",
            )
        ]
    if spec["strategy"].get("dp") is not None:
        return [
            _error(
                doc,
                ("spec", "strategy", "dp"),
                "dp cannot run with secureAggregation: it clips each update on the hub (or "
                "checks each cluster's clip), which needs each update in the clear; remove "
                "one of the two blocks",
            )
        ]
    if spec["store"].get("updateNormBound") is not None:
        return [
            _error(
                doc,
                ("spec", "store", "updateNormBound"),
                "updateNormBound cannot be checked with secureAggregation: the hub never sees "
                "an update in the clear; clipRange bounds each coordinate instead",
            )
        ]
    sa = _filled(raw, where, "bits")
    try:
        params = SecAggParams(
            threshold=sa["threshold"],
            neighbours=sa["neighbours"],
            clip_range=float(sa["clipRange"]),
            bits=sa["bits"],
        )
    except InputError as exc:
        field = str(exc).split(":", 1)[0].rsplit(".", 1)[-1]
        at = (*where, field) if field in sa else where
        return [_error(doc, at, str(exc).split(": ", 1)[-1])]
    wanted = spec["placement"].get("numberOfClusters")
    fleet = wanted if isinstance(wanted, int) and wanted > 0 else None
    if fleet is not None and params.threshold > fleet:
        return [
            _error(
                doc,
                (*where, "threshold"),
                f"threshold {params.threshold} is above placement.numberOfClusters {fleet}: "
                "no round could rebuild a secret; expected at most the clusters placed",
            )
        ]
    max_weight = spec["influence"]["numExamples"]["max"]
    try:
        # Without numberOfClusters the fleet is at least the threshold; each round checks
        # its own grid again with its own count.
        params.levels(fleet or params.threshold, max_weight)
    except InputError as exc:
        return [_error(doc, (*where, "bits"), str(exc).split(": ", 1)[-1])]
    return []


def _dp_block(spec: dict[str, Any]) -> dict[str, Any] | None:
    """``spec.strategy.dp`` with every default filled (None when there is no dp block):
    ``adaptive.clippedCountStddev`` defaults to the expected clusters per round / 20
    (Andrew et al. 2021), the placement's numberOfClusters, else completion.minClusters.
    """
    raw = spec["strategy"].get("dp")
    if raw is None:
        return None
    where = ("spec", "strategy", "dp")
    dp = _filled(raw, where, "noiseMultiplier", "delta", "samplingRate", "clipping")
    if dp.get("adaptive") is not None:
        adaptive = _filled(dp["adaptive"], (*where, "adaptive"), "targetQuantile", "learningRate")
        if "clippedCountStddev" not in adaptive:
            expected = spec["placement"].get("numberOfClusters")
            if not isinstance(expected, int) or expected < 1:
                expected = spec["completion"]["minClusters"]
            adaptive["clippedCountStddev"] = expected / 20
        dp["adaptive"] = adaptive
    return dp


def _filled(section: dict[str, Any], path: tuple[str, ...], *keys: str) -> dict[str, Any]:
    """A copy of ``section`` with the schema's defaults for ``keys`` where they are absent."""
    out = dict(section)
    for key in keys:
        if key not in out:
            out[key] = default(*path, key)
    return out


def _effective_strategy(
    spec: dict[str, Any],
) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """The strategy the aggregation runs, built once: the named one, or the DP wrapper
    around it when ``dp`` is set (its defaults filled from the schema).

    Returns:
        The strategy's name and options (validated, defaults filled), and the ``dp`` block
        with its defaults, or None.
    """
    from fl_gitops.aggregate.strategies import validate_options

    strategy = spec["strategy"]
    name = strategy["name"]
    options = validate_options(name, strategy.get("options") or {})
    dp = _dp_block(spec)
    if dp is None:
        return name, options, None
    adaptive = dp.get("adaptive")
    wrapper = {
        "clipping_norm": dp["clipNorm"],
        "noise_multiplier": dp["noiseMultiplier"],
        "inner": name,
        "inner_options": options,
    }
    if dp["clipping"] == "client":
        # Only when set, so that a server-side experiment's options keep their bytes.
        wrapper["clipping"] = "client"
    if adaptive is not None:
        wrapper["adaptive"] = {
            "target_quantile": adaptive["targetQuantile"],
            "learning_rate": adaptive["learningRate"],
            "clipped_count_stddev": adaptive["clippedCountStddev"],
        }
    return DP_STRATEGY, validate_options(DP_STRATEGY, wrapper), dp


def with_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """The validated document with every default it leaves out filled in, from the schema.

    The one place the loader fills defaults (their values live in the schema's ``default``
    keywords, which docs/blueprint-reference.md shows), run before the cross-field rules so
    that they, the dataclasses and the rendered round config all read the same values: a
    blueprint that leaves a field out renders exactly as one that writes its default.
    Sections are copied where something is filled; ``data`` itself is left as written.
    A built-in data set's partition is filled here too (an entrypoint's data takes none).
    """
    spec = _filled(data["spec"], ("spec",), "completion", "strategy")
    spec["completion"] = _filled(
        spec["completion"], ("spec", "completion"), "minClusters", "timeout", "retries"
    )
    spec["strategy"] = _filled(spec["strategy"], ("spec", "strategy"), "options")
    client = _filled(
        spec["client"],
        ("spec", "client"),
        "namespace",
        "imagePullPolicy",
        "model",
        "data",
        "train",
    )
    client["model"] = _filled(client["model"], ("spec", "client", "model"), "args", "seed")
    data_spec = _filled(client["data"], ("spec", "client", "data"), "args")
    if "builtin" in data_spec:
        partition = ("spec", "client", "data", "partition")
        data_spec.setdefault("partition", _filled({}, partition, "kind", "seed"))
    client["data"] = data_spec
    client["train"] = _filled(
        client["train"], ("spec", "client", "train"), "epochs", "batchSize", "optimizer", "seed"
    )
    spec["client"] = client
    spec["evaluation"] = _filled(spec.get("evaluation", {}), ("spec", "evaluation"), "server")
    influence = dict(spec.get("influence", {}))
    influence["distance"] = _filled(
        influence.get("distance", {}), ("spec", "influence", "distance"), "medianMultiple"
    )
    influence["numExamples"] = _filled(
        influence.get("numExamples", {}), ("spec", "influence", "numExamples"), "max", "above"
    )
    spec["influence"] = influence
    spec["aggregation"] = _filled(
        spec.get("aggregation", {}),
        ("spec", "aggregation"),
        "shards",
        "activeDeadlineSeconds",
        "backoffLimitPerIndex",
    )
    spec["gitops"] = _filled(spec["gitops"], ("spec", "gitops"), "branch", "mode")
    spec["reconcile"] = _filled(
        spec.get("reconcile", {}), ("spec", "reconcile"), "schedule", "activeDeadlineSeconds"
    )
    spec["argocd"] = _filled(
        spec.get("argocd", {}), ("spec", "argocd"), "namespace", "project", "server"
    )
    metadata = _filled(data["metadata"], ("metadata",), "namespace")
    return {**data, "metadata": metadata, "spec": spec}


def _build(data: dict[str, Any], written: dict[str, Any], doc: Document, digest: str) -> Blueprint:
    """The Blueprint of ``data`` (defaults filled); ``written`` is kept as ``raw``."""
    from fl_gitops.aggregate.strategies import validate_options

    meta = data["metadata"]
    spec = data["spec"]
    completion = spec["completion"]
    strategy = spec["strategy"]
    store = spec["store"]
    gitops = spec["gitops"]
    client = spec["client"]
    reconcile = spec["reconcile"]
    distance = spec["influence"]["distance"]
    examples = spec["influence"]["numExamples"]
    argocd = spec["argocd"]
    evaluation = spec["evaluation"]
    aggregation = spec["aggregation"]
    name, options, dp = _effective_strategy(spec)
    return Blueprint(
        file=doc.file,
        digest=f"sha256:{digest}",
        name=meta["name"],
        namespace=meta["namespace"],
        labels=dict(meta.get("labels", {})),
        annotations=dict(meta.get("annotations", {})),
        rounds=spec["rounds"],
        placement=spec["placement"],
        completion=Completion(
            min_clusters=completion["minClusters"],
            timeout=completion["timeout"],
            timeout_seconds=parse_duration(completion["timeout"]),
            retries=completion["retries"],
        ),
        strategy=Strategy(
            name=strategy["name"],
            options=validate_options(strategy["name"], strategy.get("options") or {}),
            dp=dp,
            secure_aggregation=(
                None
                if strategy.get("secureAggregation") is None
                else _filled(
                    strategy["secureAggregation"],
                    ("spec", "strategy", "secureAggregation"),
                    "bits",
                )
            ),
            effective_name=name,
            effective_options=options,
        ),
        client=client,
        evaluation_server=evaluation["server"],
        store=Store(
            uri=store["uri"],
            secret_ref=store.get("secretRef"),
            max_update_bytes=store.get("maxUpdateBytes"),
            update_norm_bound=store.get("updateNormBound"),
        ),
        gitops=GitOps(
            repo=gitops["repo"],
            branch=gitops["branch"],
            path=gitops["path"],
            mode=gitops["mode"],
            credentials_secret_ref=gitops.get("credentialsSecretRef"),
            pull_request=dict(gitops.get("pullRequest", {})),
            signing_secret_ref=(gitops.get("signing") or {}).get("secretRef"),
        ),
        reconcile=Reconcile(
            schedule=reconcile["schedule"],
            image=reconcile.get("image", client["image"]),
            image_pull_secrets=tuple(reconcile.get("imagePullSecrets", ())),
            active_deadline_seconds=reconcile["activeDeadlineSeconds"],
        ),
        argocd=ArgoCD(
            namespace=argocd["namespace"],
            project=argocd["project"],
            server=argocd["server"],
        ),
        influence=Influence(
            median_distance_multiple=distance["medianMultiple"],
            max_num_examples=examples["max"],
            above_max_num_examples=examples["above"],
        ),
        aggregation=Aggregation(
            shards=aggregation["shards"],
            resources=dict(aggregation.get("resources", {})),
            active_deadline_seconds=aggregation["activeDeadlineSeconds"],
            backoff_limit_per_index=aggregation["backoffLimitPerIndex"],
        ),
        raw=written,
    )

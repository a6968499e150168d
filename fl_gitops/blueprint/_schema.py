"""The blueprint's JSON Schema: the one definition of what a blueprint may say.

The loader validates against it, `fl-gitops schema` prints it for editors, and the
blueprint reference in docs/ is generated from it, so the three cannot drift apart.
`spec.placement` is OCM's PlacementSpec verbatim: its schema is the real Placement CRD's
(made strict) and is merged in by `blueprint_schema()`; `spec.strategy.options` is checked
by the strategy's own schema after this one passes.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = [
    "API_VERSION",
    "DNS1123_LABEL",
    "KIND",
    "LABEL_KEY",
    "LABEL_VALUE",
    "MAX_NAME",
    "STRATEGY_NAMES",
    "base_schema",
]

API_VERSION = "fl-gitops.io/v1alpha1"
KIND = "Experiment"

# The experiment name prefixes every generated name; the longest is the reconcile
# CronJob's (`<name>-reconcile`, at most 52 characters for a CronJob) and the round Job's
# (`fl-<name>-r<round>`, at most 63 characters, since it becomes a pod label).
MAX_NAME = 40

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS1123_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
LABEL_KEY = rf"^({_DNS1123_SUBDOMAIN}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
_DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_QUANTITY = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$"
_ENTRYPOINT = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
_REL_PATH = r"^(?!/)(?!.*(^|/)\.\.?(/|$))[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$"
_IMAGE = r"^[a-z0-9]([-a-z0-9._/:@]*[A-Za-z0-9])?$"
_CRON = r"^(@(hourly|daily|weekly|monthly|yearly)|(\S+\s+){4}\S+)$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"

STRATEGY_NAMES = (
    "fedavg",
    "fedavgm",
    "fedprox",
    "fedadam",
    "fedyogi",
    "fedadagrad",
    "fedmedian",
    "fedtrimmedavg",
    "krum",
    "multikrum",
)


def _obj(properties: dict[str, Any], *, required: tuple[str, ...] = (), **extra: Any) -> dict:
    out: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        out["required"] = list(required)
    out.update(extra)
    return out


def _str(pattern: str | None = None, *, max_length: int | None = None, **extra: Any) -> dict:
    out: dict[str, Any] = {"type": "string", "minLength": 1}
    if pattern:
        out["pattern"] = pattern
    if max_length:
        out["maxLength"] = max_length
    out.update(extra)
    return out


def _int(minimum: int, maximum: int, **extra: Any) -> dict:
    return {"type": "integer", "minimum": minimum, "maximum": maximum, **extra}


_LABELS = {
    "type": "object",
    "propertyNames": {"pattern": LABEL_KEY, "maxLength": 317},
    "additionalProperties": {"type": "string", "pattern": LABEL_VALUE, "maxLength": 63},
    "description": "Kubernetes labels, added to every generated object.",
}
_ANNOTATIONS = {
    "type": "object",
    "propertyNames": {"pattern": LABEL_KEY, "maxLength": 317},
    "additionalProperties": {"type": "string", "maxLength": 4096},
}
_QUANTITY_VALUE = {
    "oneOf": [
        {"type": "integer", "minimum": 0},
        {"type": "number", "exclusiveMinimum": 0},
        _str(_QUANTITY, max_length=64),
    ],
    "description": "A Kubernetes quantity such as 500m, 1, 2Gi.",
}
_RESOURCE_LIST = {
    "type": "object",
    "propertyNames": {"enum": ["cpu", "memory", "ephemeral-storage"]},
    "additionalProperties": _QUANTITY_VALUE,
}
_ARGS = {
    "type": "object",
    "description": "Keyword arguments passed to the builtin or entrypoint.",
    "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
}

_PARTITION = _obj(
    {
        "kind": {"enum": ["iid", "dirichlet", "shards"], "default": "iid"},
        "alpha": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
        "shardsPerCluster": _int(1, 1000),
        "seed": _int(0, 2**31 - 1),
    },
    required=("kind",),
    description="How the training data is split over the roster (by each cluster's place in it).",
)

_MODEL = _obj(
    {
        "builtin": {"enum": ["logreg", "mlp", "cnn"]},
        "entrypoint": _str(_ENTRYPOINT, description="package.module:function returning a module"),
        "args": _ARGS,
        "seed": _int(0, 2**31 - 1, default=0, description="Seed of round 0's weights."),
        "checkpoint": _obj(
            {"uri": _str(max_length=2048), "digest": _str(r"^sha256:[0-9a-f]{64}$")},
            required=("uri", "digest"),
            description="Round 0's weights from a safetensors file instead of the seed.",
        ),
    },
    oneOf=[{"required": ["builtin"]}, {"required": ["entrypoint"]}],
)

_DATA = _obj(
    {
        "builtin": {"enum": ["digits", "synthetic"]},
        "entrypoint": _str(_ENTRYPOINT, description="package.module:function loading data"),
        "args": _ARGS,
        "partition": _PARTITION,
        "volume": _obj(
            {
                "claimName": _str(DNS1123_LABEL, max_length=63),
                "mountPath": _str(r"^/[^\s]*$", max_length=1024),
                "readOnly": {"type": "boolean", "default": True},
            },
            required=("claimName", "mountPath"),
            description="A PersistentVolumeClaim on each cluster holding its local data.",
        ),
    },
    oneOf=[{"required": ["builtin"]}, {"required": ["entrypoint"]}],
)

_OPTIMIZER = _obj(
    {
        "name": {"enum": ["sgd", "adam"]},
        "lr": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
        "momentum": {"type": "number", "minimum": 0, "maximum": 1},
        "weightDecay": {"type": "number", "minimum": 0, "maximum": 1},
    },
    required=("name", "lr"),
)

_CLIENT = _obj(
    {
        "image": _str(_IMAGE, max_length=512),
        "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
        "resources": _obj({"requests": _RESOURCE_LIST, "limits": _RESOURCE_LIST}),
        "serviceAccountName": _str(DNS1123_LABEL, max_length=63),
        "namespace": _str(
            DNS1123_LABEL,
            max_length=63,
            default="fl-gitops",
            description="Namespace on each managed cluster where the training Job runs.",
        ),
        "env": {
            "type": "array",
            "maxItems": 64,
            "items": _obj(
                {"name": _str(_ENV_NAME, max_length=256), "value": {"type": "string"}},
                required=("name", "value"),
            ),
        },
        "nodeSelector": _LABELS,
        "activeDeadlineSeconds": _int(1, 7 * 24 * 3600),
        "model": _MODEL,
        "data": _DATA,
        "train": _obj(
            {
                "epochs": _int(1, 10_000),
                "batchSize": _int(1, 1_000_000),
                "optimizer": _OPTIMIZER,
                "seed": _int(0, 2**31 - 1),
            },
            required=("epochs", "batchSize", "optimizer"),
        ),
    },
    required=("image", "model", "data", "train"),
)

_COMPLETION = _obj(
    {
        "minClusters": _int(1, 100_000),
        "timeout": _str(_DURATION, max_length=32, description="Go duration, e.g. 30m, 1h30m."),
        "retries": _int(0, 10, default=1, description="Fresh-roster retries below quorum."),
    },
    required=("minClusters", "timeout"),
)

_STORE = _obj(
    {
        "uri": _str(r"^[a-z][a-z0-9+.-]*://\S+$|^/\S*$", max_length=2048),
        "secretRef": _str(DNS1123_LABEL, max_length=63),
        "maxUpdateBytes": _int(1, 2**40),
        "updateNormBound": {"type": "number", "exclusiveMinimum": 0},
    },
    required=("uri",),
)

_GITOPS = _obj(
    {
        "repo": _str(r"^(https?|ssh|file)://\S+$|^[A-Za-z0-9._-]+@[^\s:]+:\S+$", max_length=2048),
        "branch": _str(
            r"^(?!/)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]+(?<!/)(?<!\.lock)$", max_length=255
        ),
        "path": _str(_REL_PATH, max_length=255),
        "mode": {"enum": ["direct", "pull-request"], "default": "direct"},
        "credentialsSecretRef": _str(DNS1123_LABEL, max_length=63),
        "pullRequest": _obj(
            {
                "forge": {"enum": ["github", "gitlab", "none"]},
                "apiUrl": _str(r"^https?://\S+$", max_length=2048),
                "project": _str(
                    max_length=255, description="owner/name (GitHub) or id/path (GitLab)"
                ),
                "tokenSecretRef": _str(DNS1123_LABEL, max_length=63),
            }
        ),
    },
    required=("repo", "branch", "path"),
)

_EVALUATION = _obj(
    {
        "server": {
            "type": "boolean",
            "default": False,
            "description": "Evaluate the global model on the held-out set after each round.",
        }
    }
)

_RECONCILE = _obj(
    {
        "schedule": _str(_CRON, max_length=64, default="*/2 * * * *"),
        "image": _str(_IMAGE, max_length=512),
    },
    description="The hub's reconcile CronJob.",
)

_ARGOCD = _obj(
    {
        "namespace": _str(DNS1123_LABEL, max_length=63, default="argocd"),
        "project": _str(DNS1123_LABEL, max_length=63, default="fl-gitops"),
        "server": _str(r"^https://\S+$", max_length=2048, default="https://kubernetes.default.svc"),
    },
    description="Where the hub's Argo CD runs and which AppProject syncs experiments.",
)


def base_schema() -> dict[str, Any]:
    """The blueprint schema with `spec.placement` left as a plain object.

    Returns a fresh copy each call, so callers may change it.
    """
    schema = _obj(
        {
            "apiVersion": {"const": API_VERSION},
            "kind": {"const": KIND},
            "metadata": _obj(
                {
                    "name": _str(DNS1123_LABEL, max_length=MAX_NAME),
                    "namespace": _str(DNS1123_LABEL, max_length=63),
                    "labels": _LABELS,
                    "annotations": _ANNOTATIONS,
                },
                required=("name", "namespace"),
            ),
            "spec": _obj(
                {
                    "rounds": _int(1, 100_000),
                    "placement": {
                        "type": "object",
                        "description": "An OCM PlacementSpec, verbatim.",
                    },
                    "completion": _COMPLETION,
                    "strategy": _obj(
                        {
                            "name": {"enum": list(STRATEGY_NAMES)},
                            "options": {"type": "object", "default": {}},
                            "dp": _obj(
                                {
                                    "clipNorm": {"type": "number", "exclusiveMinimum": 0},
                                    "noiseMultiplier": {"type": "number", "minimum": 0},
                                    "seed": _int(0, 2**31 - 1),
                                },
                                required=("clipNorm",),
                                description="Server-side fixed clipping DP around the strategy.",
                            ),
                        },
                        required=("name",),
                    ),
                    "client": _CLIENT,
                    "evaluation": _EVALUATION,
                    "store": _STORE,
                    "gitops": _GITOPS,
                    "reconcile": _RECONCILE,
                    "argocd": _ARGOCD,
                },
                required=(
                    "rounds",
                    "placement",
                    "completion",
                    "strategy",
                    "client",
                    "store",
                    "gitops",
                ),
            ),
        },
        required=("apiVersion", "kind", "metadata", "spec"),
    )
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "fl-gitops Experiment"
    return copy.deepcopy(schema)

"""The blueprint's JSON Schema: the one definition of what a blueprint may say.

The loader validates against it, `fl-gitops schema` prints it for editors, and the
blueprint reference in docs/ is generated from it, so the three cannot drift apart.
`spec.placement` is OCM's PlacementSpec verbatim: its schema is the real Placement CRD's
(made strict) and is merged in by `blueprint_schema()`; `spec.strategy.options` is checked
by the strategy's own schema after this one passes.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from fl_gitops.aggregate.strategies import STRATEGIES, dp
from fl_gitops.contracts import API_VERSION
from fl_gitops.tensors import DIGEST_PATTERN

__all__ = [
    "API_VERSION",
    "DNS1123_LABEL",
    "DNS1123_SUBDOMAIN",
    "DP_INNER",
    "DP_STRATEGY",
    "KIND",
    "LABEL_KEY",
    "LABEL_VALUE",
    "MAX_NAME",
    "STRATEGY_NAMES",
    "base_schema",
    "default",
]

KIND = "Experiment"

# The experiment name prefixes every generated name; the longest is the reconcile
# CronJob's (`<name>-reconcile`, at most 52 characters for a CronJob) and the round Job's
# (`fl-<name>-r<round>`, at most 63 characters, since it becomes a pod label).
MAX_NAME = 40

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS1123_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
DNS1123_SUBDOMAIN = rf"^{_DNS1123_SUBDOMAIN}$"
LABEL_KEY = rf"^({_DNS1123_SUBDOMAIN}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
_DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_QUANTITY = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$"
_ENTRYPOINT = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
_REL_PATH = r"^(?!/)(?!.*(^|/)\.\.?(/|$))[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$"
_IMAGE = r"^[a-z0-9]([-a-z0-9._/:@]*[A-Za-z0-9])?$"
_CRON = r"^(@(hourly|daily|weekly|monthly|yearly)|(\S+\s+){4}\S+)$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_ABS_PATH = r"^/[^\s]*$"
# The store backends fl-gitops supports in a blueprint: s3 (the s3 extra) and local files.
# memory:// is for tests in one process, and a relative path would depend on the
# working directory of whichever pod or shell reads the blueprint.
_STORE_URI = r"^s3://[^/\s]\S*$|^file:///\S*$|^/\S*$"
_GIT_REPO = r"^(https?|ssh|file)://\S+$|^[A-Za-z0-9._-]+@[^\s:]+:\S+$"
_GIT_BRANCH = r"^(?!/)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]+(?<!/)(?<!\.lock)$"
_HTTP_URL = r"^https?://\S+$"
_HTTPS_URL = r"^https://\S+$"

# The names a blueprint may write are the registry's, but for the DP wrapper, which a
# blueprint reaches through its `dp` block; the table imports only the strategy modules
# (no engine, no numpy aggregation), so reading it here costs little.
DP_STRATEGY = dp.STRATEGY.name
STRATEGY_NAMES = tuple(name for name in STRATEGIES if name != DP_STRATEGY)
# The strategies the DP wrapper can take, and its noise default, from its own module.
DP_INNER = dp.INNER
_DP_NOISE_DEFAULT = dp.STRATEGY.options_schema["properties"]["noise_multiplier"]["default"]


# The defaults of whole sections: what the examples in blueprints/ run, so that a blueprint
# that leaves them out trains a model that works on a data set that ships (digits with
# the small MLP, FedAvg) and simulates as written. Leaves' defaults sit on the leaves.
_DEFAULT_MODEL: dict[str, Any] = {"builtin": "mlp"}
_DEFAULT_DATA: dict[str, Any] = {"builtin": "digits"}
_DEFAULT_OPTIMIZER: dict[str, Any] = {"name": "sgd", "lr": 0.05}
_DEFAULT_STRATEGY: dict[str, Any] = {"name": "fedavg"}


def _obj(
    properties: dict[str, Any], *, required: tuple[str, ...] = (), **extra: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        out["required"] = list(required)
    out.update(extra)
    return out


def _str(
    pattern: str | None = None, *, max_length: int | None = None, **extra: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string", "minLength": 1}
    if pattern:
        out["pattern"] = pattern
    if max_length:
        out["maxLength"] = max_length
    out.update(extra)
    return out


def _int(minimum: int, maximum: int, **extra: Any) -> dict[str, Any]:
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
    "description": "Kubernetes annotations kept with the experiment.",
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
    "description": "Quantities by resource name: cpu, memory, ephemeral-storage.",
}
_ARGS = {
    "type": "object",
    "description": "Keyword arguments passed to the builtin or entrypoint.",
    "propertyNames": {"pattern": _ENV_NAME},
    "default": {},
}

_PARTITION = _obj(
    {
        "kind": {
            "enum": ["iid", "dirichlet", "shards"],
            "default": "iid",
            "description": (
                "iid: an even random split; dirichlet: label skew drawn with concentration "
                "alpha; shards: label-sorted shards, shardsPerCluster to each cluster."
            ),
        },
        "alpha": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1000,
            "description": "Dirichlet concentration (dirichlet only); smaller is more skewed.",
        },
        "shardsPerCluster": _int(1, 1000, description="Shards per cluster (shards only)."),
        "seed": _int(0, 2**31 - 1, default=0, description="Seed of the split."),
    },
    required=("kind",),
    description=(
        "How the training data is split over the roster (by each cluster's place in it); "
        "left out with builtin data, its kind and seed take their defaults."
    ),
)

_MODEL = _obj(
    {
        "builtin": {
            "enum": ["logreg", "mlp", "cnn"],
            "description": "A model shipped with fl-gitops.",
        },
        "entrypoint": _str(_ENTRYPOINT, description="package.module:function returning a module."),
        "args": _ARGS,
        "seed": _int(0, 2**31 - 1, default=0, description="Seed of round 0's weights."),
        "checkpoint": _obj(
            {
                "uri": _str(max_length=2048, description="Where the safetensors file is."),
                "digest": _str(DIGEST_PATTERN, description="sha256 of the file's bytes."),
            },
            required=("uri", "digest"),
            description="Round 0's weights from a safetensors file instead of the seed.",
        ),
    },
    oneOf=[{"required": ["builtin"]}, {"required": ["entrypoint"]}],
    default=_DEFAULT_MODEL,
    description="The model to train: a builtin or your own entrypoint (exactly one).",
)

_DATA = _obj(
    {
        "builtin": {
            "enum": ["digits", "synthetic"],
            "description": "A data set shipped with fl-gitops, split over the roster.",
        },
        "entrypoint": _str(
            _ENTRYPOINT,
            description="package.module:function loading each cluster's own data (from volume).",
        ),
        "args": _ARGS,
        "partition": _PARTITION,
        "volume": _obj(
            {
                "claimName": _str(
                    DNS1123_LABEL, max_length=63, description="The PersistentVolumeClaim's name."
                ),
                "mountPath": _str(
                    _ABS_PATH, max_length=1024, description="Where the pod mounts it."
                ),
                "readOnly": {
                    "type": "boolean",
                    "default": True,
                    "description": "Mount it read-only.",
                },
            },
            required=("claimName", "mountPath"),
            description="A PersistentVolumeClaim on each cluster holding its local data.",
        ),
    },
    oneOf=[{"required": ["builtin"]}, {"required": ["entrypoint"]}],
    default=_DEFAULT_DATA,
    description="The training data: a builtin data set or your own loader (exactly one).",
)

_OPTIMIZER = _obj(
    {
        "name": {"enum": ["sgd", "adam"], "description": "The local optimizer."},
        "lr": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 100,
            "description": "Learning rate.",
        },
        "momentum": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "Momentum (sgd).",
        },
        "weightDecay": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "L2 weight decay.",
        },
    },
    required=("name", "lr"),
    default=_DEFAULT_OPTIMIZER,
    description="The optimizer of local training.",
)

_CLIENT = _obj(
    {
        "image": _str(
            _IMAGE, max_length=512, description="Container image that runs `fl-gitops client`."
        ),
        "imagePullPolicy": {
            "enum": ["Always", "IfNotPresent", "Never"],
            "default": "IfNotPresent",
            "description": "Pull policy of the training container.",
        },
        "resources": _obj(
            {"requests": _RESOURCE_LIST, "limits": _RESOURCE_LIST},
            description="Requests and limits of the training container.",
        ),
        "imagePullSecrets": {
            "type": "array",
            "maxItems": 16,
            "uniqueItems": True,
            "items": _str(DNS1123_LABEL, max_length=63),
            "description": (
                "Names of Secrets on each cluster for pulling the image (never their content)."
            ),
        },
        "serviceAccountName": _str(
            DNS1123_LABEL,
            max_length=63,
            description="ServiceAccount of the training pod on each cluster.",
        ),
        "namespace": _str(
            DNS1123_LABEL,
            max_length=63,
            default="fl-gitops",
            description="Namespace on each managed cluster where the training Job runs.",
        ),
        "executor": _obj(
            {
                "serviceAccount": _obj(
                    {
                        "namespace": _str(
                            DNS1123_LABEL,
                            max_length=63,
                            description="Its namespace on each managed cluster.",
                        ),
                        "name": _str(
                            DNS1123_SUBDOMAIN,
                            max_length=253,
                            description="Its name.",
                        ),
                    },
                    required=("namespace", "name"),
                    description=(
                        "The ServiceAccount on each managed cluster that the work agent "
                        "applies the round's Namespace, ConfigMap and Job as."
                    ),
                ),
            },
            required=("serviceAccount",),
            description=(
                "The ManifestWork's spec.executor, for hubs that validate executors "
                "(docs/hub.md lists the RBAC it needs); left out, the agent applies as "
                "itself."
            ),
        ),
        "feedbackScrapeType": {
            "enum": ["Poll", "Watch"],
            "description": (
                "How the work agent reads the Job's status for feedback: Poll (every "
                "status sync, OCM's default) or Watch (on each change; OCM 1.2 and "
                "later). Left out, the field is not rendered, so older hubs accept the work."
            ),
        },
        "env": {
            "type": "array",
            "maxItems": 64,
            "items": _obj(
                {
                    "name": _str(_ENV_NAME, max_length=256, description="Variable name."),
                    "value": {"type": "string", "description": "Its value (never a secret)."},
                    "valueFrom": _obj(
                        {
                            "secretKeyRef": _obj(
                                {
                                    "name": _str(
                                        DNS1123_SUBDOMAIN,
                                        max_length=253,
                                        description="The Secret.",
                                    ),
                                    "key": _str(
                                        LABEL_VALUE,
                                        max_length=63,
                                        description="Its key holding the value.",
                                    ),
                                },
                                required=("name", "key"),
                                description="A key of a Secret on each managed cluster.",
                            ),
                        },
                        required=("secretKeyRef",),
                        description="Its value from a Secret on the cluster (for secrets).",
                    ),
                },
                required=("name",),
                oneOf=[{"required": ["value"]}, {"required": ["valueFrom"]}],
            ),
            "description": "Extra environment variables of the training container.",
        },
        "nodeSelector": {**_LABELS, "description": "Node labels the training pod must run on."},
        "activeDeadlineSeconds": _int(
            1,
            7 * 24 * 3600,
            description="Seconds the training Job may run before Kubernetes stops it.",
        ),
        "model": _MODEL,
        "data": _DATA,
        "train": _obj(
            {
                "epochs": _int(1, 10_000, default=5, description="Local epochs per round."),
                "batchSize": _int(1, 1_000_000, default=16, description="Mini-batch size."),
                "optimizer": _OPTIMIZER,
                "seed": _int(0, 2**31 - 1, default=0, description="Seed of local training."),
            },
            default={},
            description="Local training in each round.",
        ),
    },
    required=("image",),
    description="The training Job that each placed cluster runs every round.",
)

_COMPLETION = _obj(
    {
        "minClusters": _int(
            1,
            100_000,
            default=2,
            description=(
                "Quorum: once the timeout has passed, aggregate if this many are done "
                "(2, as Flower's min_fit_clients: one cluster's update is no federation)."
            ),
        ),
        "timeout": _str(
            _DURATION,
            max_length=32,
            default="30m",
            description="Go duration, e.g. 30m, 1h30m: how long a round waits for every cluster.",
        ),
        "retries": _int(
            0,
            10,
            default=1,
            description="How often a round below quorum is retried with a fresh roster.",
        ),
    },
    default={},
    description="When a round is aggregated: every placed cluster done, or timeout and quorum.",
)

_STORE = _obj(
    {
        "uri": _str(
            _STORE_URI,
            max_length=2048,
            description=(
                "URI of the store: s3://bucket/prefix (the s3 extra), file:///path, or an "
                "absolute path; no other scheme, no relative path."
            ),
        ),
        "secretRef": _str(
            DNS1123_LABEL,
            max_length=63,
            description="Secret holding the store's credentials (named, never rendered).",
        ),
        "maxUpdateBytes": _int(
            1, 2**40, description="Reject an update file larger than this many bytes."
        ),
        "updateNormBound": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Reject an update farther than this (L2) from the global model.",
        },
    },
    required=("uri",),
    description="The model store: global models, updates and strategy state.",
)

_GITOPS = _obj(
    {
        "repo": _str(
            _GIT_REPO,
            max_length=2048,
            description="Git URL of the config repo.",
        ),
        "branch": _str(
            _GIT_BRANCH,
            max_length=255,
            default="main",
            description="The branch Argo CD syncs.",
        ),
        "path": _str(
            _REL_PATH,
            max_length=255,
            description="The experiment's folder in the repo; everything renders under it.",
        ),
        "mode": {
            "enum": ["direct", "pull-request"],
            "default": "direct",
            "description": "direct: commit each round to the branch; pull-request: open a PR.",
        },
        "credentialsSecretRef": _str(
            DNS1123_LABEL, max_length=63, description="Secret on the hub with Git credentials."
        ),
        "signing": _obj(
            {
                "secretRef": _str(
                    DNS1123_LABEL,
                    max_length=63,
                    description=(
                        "Secret on the hub whose ssh-privatekey signs every round commit "
                        "(git gpg.format=ssh)."
                    ),
                ),
            },
            required=("secretRef",),
            description="Round commits signed with an SSH key, checked by fl-gitops verify.",
        ),
        "pullRequest": _obj(
            {
                "forge": {
                    "enum": ["github", "gitlab", "none"],
                    "description": "Where pull requests are opened.",
                },
                "apiUrl": _str(_HTTP_URL, max_length=2048, description="The forge's API base URL."),
                "project": _str(
                    max_length=255, description="owner/name (GitHub) or id/path (GitLab)"
                ),
                "tokenSecretRef": _str(
                    DNS1123_LABEL,
                    max_length=63,
                    description="Secret on the hub with the forge API token.",
                ),
            },
            description="How pull requests are opened (mode: pull-request).",
        ),
    },
    required=("repo", "path"),
    description="The config repo that rounds are committed to.",
)

_INFLUENCE = _obj(
    {
        "distance": _obj(
            {
                "medianMultiple": {
                    "type": ["number", "null"],
                    "minimum": 1,
                    "default": 10,
                    "description": (
                        "Reject an update farther from the global model than this multiple of "
                        "the round's median distance; null turns the bound off."
                    ),
                },
            },
            description="How far from the global model an update may move it.",
        ),
        "numExamples": _obj(
            {
                "max": _int(
                    1,
                    2**53 - 1,
                    default=10_000_000,
                    description="The most examples one cluster's update may weigh.",
                ),
                "above": {
                    "enum": ["reject", "cap"],
                    "default": "reject",
                    "description": "An update reporting more: rejected, or weighed as max.",
                },
            },
            description="How much one cluster's update may weigh.",
        ),
    },
    description="Bounds on one cluster's influence on the global model (on by default).",
)

# SecAgg+ (Bell et al. 2020) through the loop: docs/privacy.md. The bounds here are the
# library's (fl_gitops.secagg.SecAggParams); the loader checks what spans fields.
_SECURE_AGGREGATION = _obj(
    {
        "threshold": _int(
            2,
            10_000,
            description=(
                "Shares that rebuild a cluster's mask secrets (t): more than half of "
                "neighbours + 1, at most neighbours + 1; more than neighbours + 1 - t of a "
                "cluster's holders dropping fails the round, with nothing unmasked."
            ),
        ),
        "neighbours": _int(
            1,
            10_000,
            description=(
                "How many other clusters each one masks with and shares its secrets to (k); "
                "k >= clusters - 1 is everyone."
            ),
        ),
        "clipRange": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": (
                "Each coordinate of an update's change from the global model is clipped to "
                "[-clipRange, clipRange] before it is quantised and masked."
            ),
        },
        "bits": _int(
            16,
            64,
            default=64,
            description="The masked sum is taken modulo 2^bits.",
        ),
    },
    required=("threshold", "neighbours", "clipRange"),
    description=(
        "Secure aggregation (SecAgg+): the hub, the store and Git see only masked updates "
        "and the survivors' sum."
    ),
)

_AGGREGATION = _obj(
    {
        "shards": _int(
            1,
            64,
            default=1,
            description=(
                "Split each round's aggregation into this many shards by tensor slice, run "
                "as one Kubernetes Indexed Job on the hub (1: in the reconcile pod). More "
                "than 1 needs a hub serving Kubernetes 1.22 or newer."
            ),
        ),
        "resources": _obj(
            {"requests": _RESOURCE_LIST, "limits": _RESOURCE_LIST},
            description="Requests and limits of each shard's pod.",
        ),
        "activeDeadlineSeconds": _int(
            60,
            86400,
            default=3600,
            description="Seconds the shards' Job may run before Kubernetes stops it.",
        ),
        "backoffLimitPerIndex": _int(
            0,
            10,
            default=2,
            description=(
                "Retries of one failed shard, alone, before the round's Job fails (Kubernetes "
                "1.29 or newer; on an older hub the Job gets shards x this retries, shared)."
            ),
        ),
    },
    description="How each round is aggregated on the hub.",
)

_EVALUATION = _obj(
    {
        "server": {
            "type": "boolean",
            "default": False,
            "description": "Evaluate the global model on the held-out set after each round.",
        }
    },
    description="Evaluation of the global model.",
)

_RECONCILE = _obj(
    {
        "schedule": _str(
            _CRON,
            max_length=64,
            default="*/2 * * * *",
            description="How often the reconcile job runs.",
        ),
        "image": _str(_IMAGE, max_length=512, description="Its image; client.image when not set."),
        "activeDeadlineSeconds": _int(
            60,
            86400,
            default=1800,
            description="A reconcile Job running longer is stopped, so later runs are not skipped.",
        ),
        "imagePullSecrets": {
            "type": "array",
            "maxItems": 16,
            "uniqueItems": True,
            "items": _str(DNS1123_LABEL, max_length=63),
            "description": "Names of Secrets on the hub for pulling its image.",
        },
    },
    description="The hub's reconcile CronJob.",
)

_ARGOCD = _obj(
    {
        "namespace": _str(
            DNS1123_LABEL,
            max_length=63,
            default="argocd",
            description="Argo CD's namespace on the hub.",
        ),
        "project": _str(
            DNS1123_LABEL,
            max_length=63,
            default="fl-gitops",
            description="The AppProject that syncs experiments.",
        ),
        "server": _str(
            _HTTPS_URL,
            max_length=2048,
            default="https://kubernetes.default.svc",
            description="API server the Application deploys to (the hub itself).",
        ),
    },
    description="Where the hub's Argo CD runs and which AppProject syncs experiments.",
)


def base_schema() -> dict[str, Any]:
    """The blueprint schema with `spec.placement` left as a plain object.

    Returns a fresh copy each call, so callers may change it.
    """
    return copy.deepcopy(_base_schema())


def default(*path: str) -> Any:
    """The schema's default for the field at ``path`` (a copy): the one place defaults live.

    ``default("spec", "argocd", "project")`` is ``"fl-gitops"``; the loader and the
    dataclasses in ``_model`` take their defaults from here rather than repeat them.

    Raises:
        KeyError: no such field, or the field has no default.
    """
    node = _base_schema()
    for key in path:
        node = node["properties"][key]
    return copy.deepcopy(node["default"])


@cache
def _base_schema() -> dict[str, Any]:
    schema = _obj(
        {
            "apiVersion": {"const": API_VERSION, "description": "The blueprint format."},
            "kind": {"const": KIND, "description": "Always Experiment."},
            "metadata": _obj(
                {
                    "name": _str(
                        DNS1123_LABEL,
                        max_length=MAX_NAME,
                        description="The experiment's name; every generated name derives from it.",
                    ),
                    "namespace": _str(
                        DNS1123_LABEL,
                        max_length=63,
                        default="fl-system",
                        description="Hub namespace of the Placement and the reconcile job.",
                    ),
                    "labels": _LABELS,
                    "annotations": _ANNOTATIONS,
                },
                required=("name",),
                description="The experiment's identity.",
            ),
            "spec": _obj(
                {
                    "rounds": _int(1, 100_000, description="How many federated rounds to run."),
                    "placement": {
                        "type": "object",
                        "description": "An OCM PlacementSpec, verbatim.",
                    },
                    "completion": _COMPLETION,
                    "strategy": _obj(
                        {
                            "name": {
                                "enum": list(STRATEGY_NAMES),
                                "description": "How the clusters' updates are aggregated.",
                            },
                            "options": {
                                "type": "object",
                                "default": {},
                                "description": (
                                    "The strategy's own options, checked against its schema "
                                    "(for example mu for fedprox, f for krum)."
                                ),
                            },
                            "dp": _obj(
                                {
                                    "clipNorm": {
                                        "type": "number",
                                        "exclusiveMinimum": 0,
                                        "description": "L2 norm each update is clipped to.",
                                    },
                                    "noiseMultiplier": {
                                        "type": "number",
                                        "minimum": 0,
                                        "default": _DP_NOISE_DEFAULT,
                                        "description": "Gaussian noise, in units of clipNorm.",
                                    },
                                    "seed": _int(0, 2**31 - 1, description="Seed of the noise."),
                                    "clipping": {
                                        "enum": ["server", "client"],
                                        "default": "server",
                                        "description": (
                                            "Where updates are clipped: server (the hub clips "
                                            "each update) or client (each cluster's Job clips "
                                            "its own to the round's clip and reports whether "
                                            "it was within it; the hub rejects one that is "
                                            "not)."
                                        ),
                                    },
                                    "delta": {
                                        "type": "number",
                                        "exclusiveMinimum": 0,
                                        "exclusiveMaximum": 1,
                                        "default": 1e-5,
                                        "description": (
                                            "The delta the epsilon is reported at (well below "
                                            "1 / the number of clusters)."
                                        ),
                                    },
                                    "samplingRate": {
                                        "type": "number",
                                        "exclusiveMinimum": 0,
                                        "maximum": 1,
                                        "default": 1.0,
                                        "description": (
                                            "The chance each eligible cluster takes part in a "
                                            "round, for the accountant; below 1 only honest when "
                                            "the placement really samples clusters at random "
                                            "at that rate."
                                        ),
                                    },
                                    "targetEpsilon": {
                                        "type": "number",
                                        "exclusiveMinimum": 0,
                                        "description": (
                                            "Stop the experiment (Completed) before a round "
                                            "would take epsilon above this."
                                        ),
                                    },
                                    "adaptive": _obj(
                                        {
                                            "targetQuantile": {
                                                "type": "number",
                                                "minimum": 0,
                                                "maximum": 1,
                                                "default": 0.5,
                                                "description": (
                                                    "The fraction of updates the clip should "
                                                    "leave unclipped."
                                                ),
                                            },
                                            "learningRate": {
                                                "type": "number",
                                                "exclusiveMinimum": 0,
                                                "default": 0.2,
                                                "description": (
                                                    "How fast the clip moves (geometric)."
                                                ),
                                            },
                                            "clippedCountStddev": {
                                                "type": "number",
                                                "exclusiveMinimum": 0,
                                                "description": (
                                                    "Noise on the count of unclipped updates; "
                                                    "default: the expected clusters per round "
                                                    "/ 20 (placement numberOfClusters, else "
                                                    "completion.minClusters)."
                                                ),
                                            },
                                        },
                                        description=(
                                            "Adaptive clipping (Andrew et al. 2021): clipNorm is "
                                            "the first round's clip, then it follows "
                                            "targetQuantile of the updates' norms."
                                        ),
                                    ),
                                },
                                required=("clipNorm",),
                                description=(
                                    "Clipping DP (on the hub or on the clusters) with central "
                                    "Gaussian noise around the strategy."
                                ),
                            ),
                            "secureAggregation": _SECURE_AGGREGATION,
                        },
                        required=("name",),
                        default=_DEFAULT_STRATEGY,
                        description="How the server combines the clusters' updates.",
                    ),
                    "client": _CLIENT,
                    "evaluation": _EVALUATION,
                    "influence": _INFLUENCE,
                    "aggregation": _AGGREGATION,
                    "store": _STORE,
                    "gitops": _GITOPS,
                    "reconcile": _RECONCILE,
                    "argocd": _ARGOCD,
                },
                required=("rounds", "placement", "client", "store", "gitops"),
                description="What to run, where, and how rounds reach Git.",
            ),
        },
        required=("apiVersion", "kind", "metadata", "spec"),
    )
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "fl-gitops Experiment"
    return schema

"""Every error fl-gitops raises on purpose, in one tree.

The CLI maps this tree to exit codes in one place (``cli.py``): a user's bad input
(``InputError`` and its children) exits 2 with a one-line message and no traceback;
the rest of the tree exits 1; anything outside the tree is a bug and exits 3. The roots
of each branch live here; the leaves live beside the code that raises them (the module
is named in brackets) and are public where that package's ``__init__`` exports them.

    FlGitopsError
    ├── InputError                  bad input a user can fix: exit 2
    │   ├── BlueprintError          file:line:col: field: message
    │   ├── InventoryError          a ManagedCluster list that cannot be read
    │   ├── TemplateError           a user template that does not render
    │   ├── WorkTooLarge            a round whose ManifestWork OCM would refuse for its size
    │   ├── StrategyOptionsError    strategy options that do not fit the strategy
    │   ├── ShardDirError           a shard's file missing, or of another round or plan [aggregate]
    │   ├── InputsError             a sharded round's inputs: unreadable, not its digest [aggregate]
    │   └── HubConfigError          no kubeconfig or context, a bad selector (also a HubError)
    ├── RenderedObjectError         a rendered object fails its schema (a bug or a bad template)
    ├── HeaderError                 not a well-formed safetensors file [tensors] (a ValueError)
    │   └── ReadFailed              a file that ended before its header's bytes [tensors]
    ├── BlockListError              not a block list, or not its digest's [tensors] (a ValueError)
    ├── StoreError                  the model store: missing object, digest mismatch
    │   ├── NotInStore              the object is not in the store [store]
    │   └── BlockMismatch           a block read that is not its block list's [aggregate]
    ├── UpdateRejected              one cluster's update fails a check (permanent for that cluster)
    │   ├── NotOnRoster             the cluster is not on the round's roster [aggregate.checks]
    │   ├── NotReported             no result reported through the hub [aggregate.checks]
    │   ├── StaleRound              the update is for another round [aggregate.checks]
    │   ├── WrongBaseModel          trained from another global model [aggregate.checks]
    │   ├── UpdateFileMissing       metadata without its tensors file [aggregate.checks]
    │   ├── UpdateTooLarge          over the store's size bound [aggregate.checks]
    │   ├── NotSafetensors          not a safetensors file [aggregate.checks]
    │   ├── TensorNamesMismatch     not the global model's tensor names [aggregate.checks]
    │   ├── ShapeMismatch           not the global model's shapes [aggregate.checks]
    │   ├── DtypeMismatch           not the global model's dtypes [aggregate.checks]
    │   ├── DigestMismatch          bytes that do not hash to its recorded sha256 [aggregate.checks]
    │   ├── NonFiniteValues         NaN or infinity [aggregate.checks]
    │   ├── NormBoundExceeded       farther from the global model than the bound [aggregate.checks]
    │   ├── DistanceBoundExceeded   farther than a multiple of the round's median [aggregate.checks]
    │   ├── TooManyExamples         more examples than one cluster may weigh [aggregate.checks]
    │   ├── UnreadableUpdate        a link, FIFO, directory, device or unreadable file [store]
    │   └── MalformedMetadata       metadata that cannot be read or lacks a field [store]
    ├── NotEnoughUpdates            too few valid updates to aggregate the round [aggregate]
    ├── ShardsFailed                a round's shard Job failed (deadline, retries) [reconcile]
    ├── HubError                    the hub (Kubernetes API or the local hub)
    │   ├── HubNotFound             the object, its namespace or its CRD is not there [hub]
    │   ├── HubConflict             a write conflicted with another writer (409) [hub]
    │   ├── HubForbidden            credentials refused (401) or RBAC denies the call (403) [hub]
    │   ├── HubUnavailable          not now: refused, timeout, 429 or 5xx; .delay [hub]
    │   └── HubConfigError          (also an InputError, above) [hub]
    ├── JsonPathError               a JSONPath the local agent cannot evaluate [hub] (a ValueError)
    ├── ReportError                 a cluster's report through the hub is off-contract [reports]
    ├── GitError                    the config repo
    ├── SecAggError                 secure aggregation could not go on, nothing unmasked [secagg]
    │   ├── NotEnoughShares         too many dropped: a secret below the threshold [secagg]
    │   └── BadMessage              a protocol message that does not open or parse [secagg]
    └── DevHubError                 the development hub did not start or stopped answering [devhub]
"""

from __future__ import annotations

__all__ = [
    "BlueprintError",
    "FlGitopsError",
    "GitError",
    "HubError",
    "InputError",
    "InventoryError",
    "RenderedObjectError",
    "StoreError",
    "StrategyOptionsError",
    "TemplateError",
    "UpdateRejected",
    "WorkTooLarge",
]


class FlGitopsError(Exception):
    """Root of every error fl-gitops raises on purpose."""


class InputError(FlGitopsError):
    """Input a user can fix; the CLI prints it on one line and exits 2."""


class BlueprintError(InputError):
    """A blueprint problem, located so an editor can jump to it.

    Prints as ``file:line:col: field.path: message``; line and column are 1-based
    (0 means unknown, and is left out).
    """

    def __init__(
        self,
        message: str,
        *,
        file: str = "<blueprint>",
        line: int = 0,
        column: int = 0,
        field: str = "",
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}"
            if self.column:
                where += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class InventoryError(InputError):
    """The ManagedCluster inventory cannot be read or is not a list of ManagedClusters."""


class TemplateError(InputError):
    """A template (shipped or the user's own) failed to render."""


class WorkTooLarge(InputError):
    """A rendered ManifestWork whose manifests are over OCM's size limit.

    The hub's webhook would refuse it at Argo CD's sync, after the round was committed;
    refusing to render it keeps the round out of Git. Names the cluster and the size.
    """

    def __init__(self, message: str, *, cluster: str, size: int, limit: int) -> None:
        self.cluster = cluster
        self.size = size
        self.limit = limit
        super().__init__(message)


class StrategyOptionsError(InputError):
    """Strategy options that the named strategy does not accept."""


class RenderedObjectError(FlGitopsError):
    """A rendered object does not validate against its schema."""


class StoreError(FlGitopsError):
    """The model store could not give or take an object (names the URI or digest)."""


class UpdateRejected(FlGitopsError):
    """One cluster's update failed a check; the others are still aggregated."""

    def __init__(self, cluster: str, reason: str) -> None:
        self.cluster = cluster
        self.reason = reason
        super().__init__(f"update from {cluster} rejected: {reason}")


class HubError(FlGitopsError):
    """The hub (Kubernetes API or the local hub) failed to answer."""


class GitError(FlGitopsError):
    """The config repo could not be read, committed or pushed (names the ref)."""

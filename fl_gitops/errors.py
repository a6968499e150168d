"""Every error fl-gitops raises on purpose, in one tree.

The CLI maps this tree to exit codes in one place (``cli.py``): a user's bad input
(``InputError`` and its children) exits 2 with a one-line message and no traceback;
anything outside the tree is a bug and exits 3.

    FlGitopsError
    ├── InputError                  bad input a user can fix: exit 2
    │   ├── BlueprintError          file:line:col: field: message
    │   ├── InventoryError          a ManagedCluster list that cannot be read
    │   ├── TemplateError           a user template that does not render
    │   ├── WorkTooLarge            a round whose ManifestWork OCM would refuse for its size
    │   └── StrategyOptionsError    strategy options that do not fit the strategy
    ├── RenderedObjectError         a rendered object fails its schema (a bug or a bad template)
    ├── StoreError                  the model store: missing object, digest mismatch
    ├── UpdateRejected              one cluster's update fails a check (permanent for that cluster)
    ├── HubError                    the hub (Kubernetes API or the local hub)
    └── GitError                    the config repo
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

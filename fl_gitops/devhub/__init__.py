"""A development hub: a real kube-apiserver and etcd on loopback, with OCM's and Argo CD's CRDs.

For the tests of the hub side and for ``fl-gitops simulate --hub kubernetes``: the API
server is the real one (server-side apply, pruning, the status subresource, RBAC, paging,
watches); no controller runs, so the simulation's local agent plays Argo CD, the placement
controller and the work agent against it. ``fl-gitops dev-hub`` starts one by hand.
"""

from fl_gitops.devhub._assets import BUILD_HINT, DEFAULT_CACHE, KubeAssets, find_assets
from fl_gitops.devhub._crds import crd_objects, install_crds
from fl_gitops.devhub._diff import differences
from fl_gitops.devhub._server import ADMIN_USER, ApiServer, DevHubError, Identity

__all__ = [
    "ADMIN_USER",
    "BUILD_HINT",
    "DEFAULT_CACHE",
    "ApiServer",
    "DevHubError",
    "Identity",
    "KubeAssets",
    "crd_objects",
    "differences",
    "find_assets",
    "install_crds",
]

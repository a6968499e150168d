"""Where the kube-apiserver and etcd binaries of a development hub come from.

The envtest convention (controller-runtime's ``setup-envtest``) is a folder named by
``KUBEBUILDER_ASSETS`` holding ``kube-apiserver`` and ``etcd``. On machines that reach only
Debian's and PyPI's registries, ``.ci/kube-assets`` builds that folder from Debian's
Kubernetes source and caches it; this module looks in both places, in that order, so that
a contributor with ``setup-envtest`` and a CI machine with the cache need no flag.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fl_gitops.errors import InputError

__all__ = ["BUILD_HINT", "DEFAULT_CACHE", "KubeAssets", "find_assets"]

#: The folder ``.ci/kube-assets`` writes when ``FL_GITOPS_KUBE_ASSETS`` is not set.
DEFAULT_CACHE = Path(
    os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache",
    "fl-gitops",
    "kube-assets-1.20.2",
)

#: One line that says how to get the binaries.
BUILD_HINT = (
    "set KUBEBUILDER_ASSETS to a folder with kube-apiserver and etcd "
    "(`setup-envtest use -p path`), or build them on Debian 12 with `bash .ci/kube-assets`"
)


@dataclass(frozen=True)
class KubeAssets:
    """The two binaries a development hub runs."""

    folder: Path
    kube_apiserver: Path
    etcd: Path


def _in(folder: Path) -> KubeAssets | None:
    apiserver, etcd = folder / "kube-apiserver", folder / "etcd"
    if all(p.is_file() and os.access(p, os.X_OK) for p in (apiserver, etcd)):
        return KubeAssets(folder, apiserver, etcd)
    return None


def find_assets(folder: str | os.PathLike[str] | None = None) -> KubeAssets:
    """The binaries in ``folder``, ``$KUBEBUILDER_ASSETS``, or the build cache, in that order.

    Raises:
        InputError: none of them holds both binaries (the message says how to get them).
    """
    if folder is not None:
        candidates = [("the folder given", Path(folder))]
    else:
        candidates = []
        env = os.environ.get("KUBEBUILDER_ASSETS")
        if env:
            candidates.append(("KUBEBUILDER_ASSETS", Path(env)))
        cache = os.environ.get("FL_GITOPS_KUBE_ASSETS")
        candidates.append(("the build cache", Path(cache) if cache else DEFAULT_CACHE))
    for _, path in candidates:
        found = _in(path)
        if found is not None:
            return found
    looked = ", ".join(f"{what} ({path})" for what, path in candidates)
    raise InputError(f"no kube-apiserver and etcd in {looked}: {BUILD_HINT}")

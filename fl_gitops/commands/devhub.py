"""`fl-gitops dev-hub`: a real kube-apiserver on this machine, for `simulate --hub kubernetes`.

Starts etcd and kube-apiserver on loopback (the envtest binaries), installs OCM's and Argo
CD's CRDs, writes an administrator's kubeconfig, and keeps running until Ctrl-C. Nothing
else runs on it: `simulate --hub kubernetes` plays the controllers itself.
"""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path
from typing import Any

from fl_gitops.errors import InputError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        default="fl-devhub",
        metavar="DIR",
        help="a folder for etcd's data, the certificates, the logs and the kubeconfig; made "
        "if missing (default: %(default)s, under the current directory)",
    )
    parser.add_argument(
        "--assets",
        metavar="DIR",
        help="a folder holding the kube-apiserver and etcd binaries (default: "
        "$KUBEBUILDER_ASSETS, else the build cache of .ci/kube-assets)",
    )


def run(args: argparse.Namespace) -> int:
    from fl_gitops.devhub import ApiServer, crd_objects, find_assets, install_crds

    folder = Path(args.dir).resolve()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--dir {args.dir}: not a directory; expected a folder for the dev hub")
    assets = find_assets(args.assets)
    server = ApiServer(assets, workdir=folder)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    server.start()
    try:
        with server.api_client() as client:
            install_crds(client, crd_objects())
        kubeconfig = server.kubeconfig(folder / "kubeconfig")
        print(f"kube-apiserver {server.host} is ready, with OCM's and Argo CD's CRDs")
        print(f"kubeconfig: {kubeconfig}")
        print(
            "try: fl-gitops simulate blueprints/digits-fedavg.yaml --hub kubernetes "
            f"--kubeconfig {kubeconfig}"
        )
        print(
            "Ctrl-C stops it; its data stays in --dir, so starting it there again resumes",
            flush=True,
        )
        while True:
            time.sleep(3600)
    finally:
        server.stop()

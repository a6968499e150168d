"""Git runs only through fl_gitops.gitops, where its errors are translated and redacted."""

from __future__ import annotations

import ast
from pathlib import Path

import fl_gitops

ROOT = Path(fl_gitops.__file__).resolve().parent
# Run the envtest binaries (etcd, kube-apiserver), and the local Job controller's
# `fl-gitops aggregate` shard workers: never git.
ALLOWED = {"devhub/_server.py", "hub/_local.py"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_outside_gitops_runs_a_process_or_git_itself():
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & {"subprocess", "git"})
        for path in sorted(ROOT.rglob("*.py"))
        if path.relative_to(ROOT).parts[0] != "gitops"
        and str(path.relative_to(ROOT)) not in ALLOWED
    }
    assert {k: v for k, v in offenders.items() if v} == {}

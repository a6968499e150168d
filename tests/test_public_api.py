"""Everything `fl_gitops.__all__` names can be imported, and the CLI stays light."""

from __future__ import annotations

import subprocess
import sys

import fl_gitops


def test_every_public_name_resolves():
    missing = [name for name in fl_gitops.__all__ if getattr(fl_gitops, name, None) is None]
    assert missing == []


def test_rendering_commands_do_not_import_torch_or_the_kubernetes_client():
    code = (
        "import sys; from fl_gitops.cli import main; "
        "main(['schema', '--compact']); "
        "print(sorted(m for m in ('torch', 'kubernetes', 'git') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"

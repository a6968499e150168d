"""Shell completion for bash and zsh: `fl-gitops ren<TAB>` gives render, and a command's own
flags complete although the CLI adds them lazily, without importing torch.

Driven the way argcomplete's own tests drive it: the program run with ``COMP_LINE``,
``COMP_POINT`` and ``_ARGCOMPLETE`` set, the answer read from ``_ARGCOMPLETE_STDOUT_FILENAME``;
then through the real script in a real bash.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fl_gitops.cli import main

IFS = "\013"  # argcomplete's separator between completions
BIN = Path(sys.executable).parent


def _complete(tmp_path: Path, line: str, **env: str) -> list[str]:
    """The completions fl-gitops answers for ``line``, the cursor at its end."""
    out = tmp_path / "completions"
    done = subprocess.run(
        [sys.executable, "-m", "fl_gitops.cli"],
        env={
            **os.environ,
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            "_ARGCOMPLETE": "1",
            "_ARGCOMPLETE_SUPPRESS_SPACE": "1",
            "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
            **env,
        },
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    return sorted(text.split(IFS)) if text else []


def test_a_command_name_completes(tmp_path: Path) -> None:
    assert _complete(tmp_path, "fl-gitops ren") == ["render"]
    assert _complete(tmp_path, "fl-gitops re") == ["reconcile", "render"]


def test_a_commands_own_flags_complete_though_they_are_added_lazily(tmp_path: Path) -> None:
    assert _complete(tmp_path, "fl-gitops render --ch") == ["--check"]
    assert _complete(tmp_path, "fl-gitops history --pl") == ["--plot"]


def test_a_flags_choices_complete(tmp_path: Path) -> None:
    assert _complete(tmp_path, "fl-gitops completion ") == ["--help", "-h", "bash", "zsh"]


def test_completing_never_imports_torch(tmp_path: Path) -> None:
    # a torch that leaves a mark when imported, ahead of the real one on the path
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    mark = tmp_path / "torch-imported"
    (fake / "__init__.py").write_text(f"open({str(mark)!r}, 'w').close()\n")
    env = {"PYTHONPATH": os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")])}
    for line in ("fl-gitops simulate --cen", "fl-gitops client --con", "fl-gitops "):
        assert _complete(tmp_path, line, **env)
    assert not mark.exists()


def test_completion_prints_a_script_for_bash_and_zsh(capsys: pytest.CaptureFixture[str]) -> None:
    for shell in ("bash", "zsh"):
        assert main(["completion", shell]) == 0
        script = capsys.readouterr().out
        assert "_python_argcomplete" in script
        assert "complete -o nospace -o default -o bashdefault -F _python_argcomplete fl-gitops" in (
            script
        )
        assert "compdef _python_argcomplete fl-gitops" in script


def test_completion_for_another_shell_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["completion", "fish"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "usage: fl-gitops completion [-h] SHELL\n"
        "fl-gitops completion: error: argument SHELL: invalid choice: 'fish' "
        "(choose from 'bash', 'zsh')\n"
    )


def _bash_completes(tmp_path: Path, register: str, words: list[str]) -> list[str]:
    """COMPREPLY after a real bash evals ``register`` and completes the last of ``words``."""
    if shutil.which("bash") is None or not (BIN / "fl-gitops").exists():
        pytest.skip("needs bash and the fl-gitops console script")
    line = " ".join(words)
    script = (
        f'eval "$({register})" || exit 9\n'
        f"COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        f"_python_argcomplete fl-gitops {words[-1]!r} {words[-2]!r}\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")])}
    done = subprocess.run(
        ["bash", "--norc", "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return sorted(w.strip() for w in done.stdout.splitlines() if w.strip())


def test_bash_completes_through_fl_gitops_completion_bash(tmp_path: Path) -> None:
    register = "fl-gitops completion bash"
    assert _bash_completes(tmp_path, register, ["fl-gitops", "ren"]) == ["render"]
    assert _bash_completes(tmp_path, register, ["fl-gitops", "render", "--ch"]) == ["--check"]


def test_bash_completes_through_register_python_argcomplete(tmp_path: Path) -> None:
    if not (BIN / "register-python-argcomplete").exists():
        pytest.skip("needs argcomplete's register-python-argcomplete script")
    register = "register-python-argcomplete fl-gitops"
    assert _bash_completes(tmp_path, register, ["fl-gitops", "render", "--ch"]) == ["--check"]


def _zsh_completes(tmp_path: Path, typed: str, expected: str) -> None:
    """A real interactive zsh (driven through zsh's own pty module) that evals
    `fl-gitops completion zsh`, types ``typed`` and TAB, and shows ``expected``."""
    zsh = shutil.which("zsh")
    if zsh is None or not (BIN / "fl-gitops").exists():
        pytest.skip("needs zsh and the fl-gitops console script")
    # The prompt is spelled in two parts so that the echo of the command that sets it
    # cannot match the pattern the script waits for.
    script = (
        "zmodload zsh/zpty\n"
        "zpty z 'zsh -f -i'\n"
        "zpty -w z 'autoload -U compinit; compinit -u; "
        'eval "$(fl-gitops completion zsh)"; PS1="RE""ADY> "\'\n'
        "zpty -r z out '*READY> '\n"
        f"zpty -wn z $'{typed}\\t'\n"
        f"zpty -r z out '*{expected}*'\n"
        "print -r -- COMPLETED\n"
        "zpty -d z\n"
    )
    env = {**os.environ, "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")])}
    done = subprocess.run(
        [zsh, "-f", "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,  # a completion that never comes blocks the pattern read: fail, not hang
    )
    assert done.stdout.splitlines()[-1:] == ["COMPLETED"], done.stderr


def test_zsh_completes_through_fl_gitops_completion_zsh(tmp_path: Path) -> None:
    _zsh_completes(tmp_path, "fl-gitops ren", "render")
    _zsh_completes(tmp_path, "fl-gitops render --ch", "--check")

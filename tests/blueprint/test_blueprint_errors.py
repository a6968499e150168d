"""Every kind of bad blueprint is refused with one located, plain-language message.

The cases live in ``cases.py``; here they run through ``load_blueprint`` one by one and
through ``fl-gitops validate`` as a user runs it (a subprocess), asserting the whole text.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import yaml

from fl_gitops.blueprint import _yaml as blueprint_yaml
from fl_gitops.blueprint import load_blueprint
from fl_gitops.cli import main
from fl_gitops.errors import BlueprintError

sys.path.insert(0, str(Path(__file__).parent))
from cases import _BOMB, CASES, REFERENCE, Case, variant

BY_ID = {case.id: case for case in CASES}


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("fl-gitops")
    return [str(script)] if script.exists() else [sys.executable, "-m", "fl_gitops.cli"]


def _write(directory: Path, case: Case) -> Path:
    path = directory / f"{case.id}.yaml"
    path.write_bytes(case.data)
    return path


def test_the_reference_blueprint_loads(tmp_path):
    path = tmp_path / "reference.yaml"
    path.write_text(REFERENCE)
    blueprint = load_blueprint(path)
    assert (blueprint.name, blueprint.rounds, blueprint.strategy.name) == (
        "digits-fedavg",
        30,
        "fedavg",
    )


def test_the_reference_is_the_stock_blueprint_without_its_comments():
    # Kept as a literal so that the cases' line numbers are plain; this keeps it honest.
    stock = Path(__file__).resolve().parents[2] / "blueprints" / "digits-fedavg.yaml"
    assert yaml.safe_load(REFERENCE) == yaml.safe_load(stock.read_text())


def test_there_are_at_least_forty_distinct_kinds():
    assert len(CASES) >= 40
    assert len(BY_ID) == len(CASES)
    assert len({case.data for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_blueprint_is_refused_with_its_located_message(case, tmp_path):
    path = _write(tmp_path, case)
    with pytest.raises(BlueprintError) as info:
        load_blueprint(path)
    error = info.value
    assert str(error) == f"{path}{case.expected}"
    assert error.file == str(path)
    assert error.line or error.field or "the file is" in error.message
    # The bytes a caller already holds (as `render` passes them) give the same error.
    with pytest.raises(BlueprintError) as again:
        load_blueprint(path, text=case.data)
    assert str(again.value) == str(error)


def test_validate_cli_refuses_every_kind_with_exit_2_and_no_traceback(tmp_path):
    paths = [_write(tmp_path, case) for case in CASES]
    proc = subprocess.run(
        [*_cli(), "validate", *map(str, paths)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    for case, path in zip(CASES, paths, strict=True):
        assert f"error: {path}{case.expected}" in lines, case.id
    assert all(line.startswith(f"error: {tmp_path}") for line in lines)


SINGLE = [
    "tab-indentation",
    "unclosed-bracket",
    "duplicate-key-nested",
    "alias-bomb",
    "five-megabytes",
    "random-bytes",
    "unknown-placement",
    "path-dotdot",
    "label-value-newline",
    "strategy-unknown-option",
]


def test_validate_cli_prints_exactly_the_one_error_for_each_file(tmp_path):
    # One process per file, as a CI job runs it; started together to keep the suite fast.
    started = []
    for name in SINGLE:
        path = _write(tmp_path, BY_ID[name])
        proc = subprocess.Popen(
            [*_cli(), "validate", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append((name, path, proc))
    for name, path, proc in started:
        out, err = proc.communicate(timeout=120)
        assert (proc.returncode, out, err) == (2, "", f"error: {path}{BY_ID[name].expected}\n")


def test_validate_reports_every_schema_error_in_file_order(tmp_path, capsys):
    text = (
        variant("rounds: 30", "rounds: ten")
        .replace("name: digits-fedavg", "name: Digits")
        .replace("mode: direct", "mode: push")
    )
    path = tmp_path / "three.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"error: {path}:4:9: metadata.name: expected a DNS-1123 label (lowercase letters, "
        "digits and '-', starting and ending alphanumeric), got string 'Digits'",
        f"error: {path}:9:11: spec.rounds: expected an integer, got string 'ten'",
        f"error: {path}:53:11: spec.gitops.mode: expected one of 'direct', 'pull-request', "
        "got string 'push'",
    ]


def test_validate_names_a_missing_file_and_a_directory(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert main(["validate", str(missing), str(tmp_path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {missing}: cannot read the file: No such file or directory",
        f"error: {tmp_path}: cannot read the file: Is a directory",
    ]


def _refused(path: Path) -> tuple[int, BlueprintError]:
    """The error loading ``path`` raises, and the most memory the attempt allocated."""
    tracemalloc.start()
    try:
        with pytest.raises(BlueprintError) as info:
            load_blueprint(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, info.value


def test_billion_laughs_is_refused_without_expanding_it(tmp_path):
    path = tmp_path / "lol.yaml"
    path.write_text(_BOMB)  # 10**9 strings once expanded
    peak, error = _refused(path)
    assert str(error) == (
        f"{path}:1:7: lol2[5][4]: more than 64 alias references; "
        "expected a blueprint without alias bombs"
    )
    assert peak < 16 * 2**20  # nothing like 10**9 strings was ever built


def test_a_few_aliases_are_fine(tmp_path):
    text = variant("image: ghcr.io/example/fl-gitops:0.1.0", "image: &img ghcr.io/x/fl:1")
    text += "  reconcile:\n    image: *img\n"
    path = tmp_path / "aliases.yaml"
    path.write_text(text)
    assert load_blueprint(path).reconcile.image == "ghcr.io/x/fl:1"


def test_a_five_megabyte_file_is_refused_before_parsing(tmp_path, monkeypatch):
    path = _write(tmp_path, BY_ID["five-megabytes"])

    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("the YAML parser must not see an oversized file")

    monkeypatch.setattr(blueprint_yaml, "YAML", no_parsing)
    peak, error = _refused(path)
    assert error.message == "the file is 5244145 bytes; a blueprint may be at most 1048576 bytes"
    assert peak < 2 * 2**20  # the size was checked before the file was read
    with pytest.raises(BlueprintError):
        load_blueprint(path, text=path.read_bytes())


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_an_endless_file_is_refused_after_the_bound():
    peak, error = _refused(Path("/dev/zero"))
    assert str(error) == (
        "/dev/zero: the file is over 1048576 bytes; a blueprint may be at most 1048576 bytes"
    )
    assert peak < 4 * 2**20  # read up to the bound, not on


def test_deep_nesting_is_refused_without_recursion_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("spec: " + "[" * 200_000 + "]" * 200_000 + "\n")
    _, error = _refused(path)
    assert error.message == "nesting deeper than 64 levels; expected a blueprint"
    assert (error.line, error.column, error.field) == (1, 70, "spec[0][0][0][0][0][0][0]...")


def test_bad_cel_is_refused_at_its_line_as_render_would(tmp_path):
    # CEL compiles with no cluster data, so validate refuses what render would (issue 11).
    text = variant(
        "          claimSelector:",
        "          celSelector:\n"
        "            celExpressions: ['managedCluster.metadata.labels[ ==']\n"
        "          claimSelector:",
    )
    path = tmp_path / "cel.yaml"
    path.write_text(text)
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(path)
    error = caught.value
    field = "spec.placement.predicates[0].requiredClusterSelector.celSelector.celExpressions[0]"
    assert (error.line, error.column, error.field) == (19, 30, field)
    assert str(error).startswith(
        f"{path}:19:30: {field}: 'managedCluster.metadata.labels[ ==' does not compile: "
    )


def _mutations(seed: int, count: int) -> list[str]:
    """The reference with a few characters inserted, deleted or copied: YAML's sharp bits."""
    rng = random.Random(seed)
    alphabet = [*":-[]{}&*!|>'\"#%@`,? \n\t0123456789abc.~", "é", "\u2028", "\x85"]
    out = []
    for _ in range(count):
        chars = list(REFERENCE)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(chars))
            roll = rng.random()
            if roll < 0.4:
                chars.insert(pos, rng.choice(alphabet))
            elif roll < 0.7:
                del chars[pos]
            else:
                start = rng.randrange(len(chars))
                chars[pos:pos] = chars[start : start + rng.randint(1, 20)]
        out.append("".join(chars))
    return out


def test_mangled_blueprints_fail_only_with_one_line_blueprint_errors():
    refused = 0
    for text in _mutations(seed=11, count=200):
        try:
            load_blueprint("mangled.yaml", text=text.encode())
        except BlueprintError as exc:
            refused += 1
            for error in [exc, *getattr(exc, "more", [])]:
                assert str(error).startswith("mangled.yaml")
                assert not any(c in str(error) for c in "\n\r\u2028\x85"), str(error)
    assert refused > 150

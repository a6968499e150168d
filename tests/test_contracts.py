"""Each contract fl-gitops shares between a writer and its readers is written once.

The API version of its own documents lives in ``fl_gitops.contracts``, the digest pattern
in ``fl_gitops.tensors``; every other module takes them from there.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import fl_gitops
from fl_gitops.blueprint import API_VERSION as BLUEPRINT_API_VERSION
from fl_gitops.blueprint import blueprint_schema as base_schema
from fl_gitops.contracts import API_VERSION
from fl_gitops.tensors import DIGEST_PATTERN, is_digest, sha256_digest

PACKAGE = Path(fl_gitops.__file__).parent
SOURCES = sorted(p for p in PACKAGE.rglob("*.py"))


def _copies(pattern: str, home: str) -> list[str]:
    found = []
    for path in SOURCES:
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == home:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            # Code only: prose in a docstring or comment may name the version.
            if re.search(pattern, line) and not line.lstrip().startswith(("#", "-", "``")):
                found.append(f"{rel}:{number}: {line.strip()}")
    return found


def test_the_api_version_is_written_once():
    assert API_VERSION == "fl-gitops.io/v1alpha1"
    assert BLUEPRINT_API_VERSION == API_VERSION
    assert _copies(r"[\"']fl-gitops\.io/v1alpha1[\"']", "contracts.py") == []


def test_the_blueprint_schema_checks_the_one_api_version():
    assert base_schema()["properties"]["apiVersion"]["const"] == API_VERSION


def test_the_digest_pattern_is_written_once():
    assert _copies(r"\[0-9a-f\]\{64\}", "tensors/_digest.py") == []


def test_the_schema_digest_pattern_is_the_tensors_one():
    spec = base_schema()["properties"]["spec"]["properties"]
    model = spec["client"]["properties"]["model"]["properties"]
    checkpoint = model["checkpoint"]["properties"]
    assert checkpoint["digest"]["pattern"] == DIGEST_PATTERN


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (sha256_digest(b""), True),
        ("sha256:" + "a" * 64, True),
        ("sha256:" + "A" * 64, False),
        ("sha256:" + "a" * 63, False),
        ("sha256:" + "a" * 64 + "\n", False),
        (" sha256:" + "a" * 64, False),
        ("md5:" + "a" * 64, False),
        (None, False),
        (b"sha256:" + b"a" * 64, False),
    ],
)
def test_a_digest_is_sha256_and_64_lowercase_hex_digits(value, ok):
    assert is_digest(value) is ok


def test_the_model_path_is_spelled_once():
    from fl_gitops.render import model_uri
    from fl_gitops.tensors import model_path

    digest = sha256_digest(b"model")
    assert model_path(digest) == f"models/sha256-{digest.removeprefix('sha256:')}.safetensors"
    assert model_uri("s3://bucket/fl/", digest) == f"s3://bucket/fl/{model_path(digest)}"
    # In code (a string, or a path after '/'), not the store's docstring drawing its layout.
    assert _copies(r"[\"'/]models/sha256-", "tensors/_digest.py") == []


def test_the_round_commit_trailers_are_spelled_once():
    assert _copies(r"[\"']FL-(Experiment|Round|Model|Blueprint)[\"']", "gitops/_commit.py") == []

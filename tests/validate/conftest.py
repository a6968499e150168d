"""Shared fixtures for the validation tests: the sample objects under data/valid."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

VALID = Path(__file__).parent / "data" / "valid"
SAMPLES = sorted(path.stem for path in VALID.glob("*.yaml"))


def load_sample(name: str) -> dict[str, Any]:
    """A fresh copy of one sample object: ``load_sample("manifestwork")``."""
    return copy.deepcopy(yaml.safe_load((VALID / f"{name}.yaml").read_text()))


@pytest.fixture
def sample() -> Callable[[str], dict[str, Any]]:
    """``load_sample``, for tests that take it as a fixture."""
    return load_sample

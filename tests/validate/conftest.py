"""Shared fixtures for the validation tests: the sample objects under data/valid."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

VALID = Path(__file__).parent / "data" / "valid"


@pytest.fixture
def sample():
    """Load a fresh copy of one sample object: ``sample("manifestwork")``."""

    def load(name: str) -> dict[str, Any]:
        return copy.deepcopy(yaml.safe_load((VALID / f"{name}.yaml").read_text()))

    return load

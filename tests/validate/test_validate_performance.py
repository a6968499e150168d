"""Validating many ManifestWorks stays cheap: schemas and validators are built once.

The speed itself is measured by bench/render.py; this checks the behaviour that makes it
cheap: every object of a kind reuses one validator.
"""

from __future__ import annotations

import copy

from fl_gitops.validate import catalog, validate_object


def test_many_manifestworks_reuse_one_validator_per_kind(sample):
    template = sample("manifestwork")
    works = []
    for index in range(200):
        work = copy.deepcopy(template)
        work["metadata"]["namespace"] = f"cluster-{index:04d}"
        works.append(work)
    validate_object(works[0])
    built = catalog.validator_for.cache_info().misses
    problems = [problem for work in works for problem in validate_object(work)]
    assert problems == []
    assert catalog.validator_for.cache_info().misses == built
    assert catalog.validator_for.cache_info().hits >= len(works)

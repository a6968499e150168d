"""Generated fleets are placed by the placements they were generated for."""

from __future__ import annotations


def test_generated_clusters_satisfy_a_label_equality_cel_predicate():
    from datetime import UTC, datetime

    from fl_gitops.placement import evaluate_placement, generate_inventory

    spec = {
        "predicates": [
            {
                "requiredClusterSelector": {
                    "celSelector": {
                        "celExpressions": [
                            'managedCluster.metadata.labels["fl-gitops.io/dataset"] == "digits"'
                        ]
                    }
                }
            }
        ]
    }
    fleet = generate_inventory(12, spec=spec)
    result = evaluate_placement(
        spec, fleet, placement_name="p", namespace="n", now=datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert len(result.decided) == 12

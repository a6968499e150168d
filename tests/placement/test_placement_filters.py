"""Which clusters a Placement can select: cluster sets, predicates, CEL and taints."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from fl_gitops.errors import InputError

from .conftest import Make, evaluate


def test_cluster_sets_select_by_the_clusterset_label(cluster: Make, now: datetime) -> None:
    clusters = [
        cluster("a", clusterset="fl-silos"),
        cluster("b", clusterset="other"),
        cluster("c", clusterset=None),  # OCM puts such a cluster in "default"
    ]
    assert evaluate({"clusterSets": ["fl-silos"]}, clusters, now).decided == ("a",)
    assert evaluate({"clusterSets": ["default"]}, clusters, now).decided == ("c",)
    assert evaluate({"clusterSets": ["global"]}, clusters, now).decided == ("a", "b", "c")
    # no clusterSets: every set bound to the namespace (offline default: all of them)
    assert evaluate({}, clusters, now).decided == ("a", "b", "c")
    bound = evaluate({}, clusters, now, bound_clustersets=["other"])
    assert bound.decided == ("b",)
    assert bound.excluded["a"] == "cluster set 'fl-silos' is not eligible"


def test_cluster_sets_not_bound_to_the_namespace_select_nothing(
    cluster: Make, now: datetime
) -> None:
    clusters = [cluster("a")]
    result = evaluate({"clusterSets": ["fl-silos"]}, clusters, now, bound_clustersets=["x"])
    assert result.decided == ()
    assert result.reason == "NoIntersection"
    assert evaluate({}, clusters, now, bound_clustersets=[]).reason == (
        "NoManagedClusterSetBindings"
    )


def test_predicates_are_ored_and_selectors_inside_one_are_anded(
    cluster: Make, now: datetime
) -> None:
    clusters = [
        cluster("both", labels={"tier": "gold"}, claims={"region": "eu"}),
        cluster("label-only", labels={"tier": "gold"}, claims={"region": "us"}),
        cluster("claim-only", labels={"tier": "iron"}, claims={"region": "eu"}),
        cluster("gpu", labels={"gpu": "a100"}),
    ]
    spec = {
        "predicates": [
            {
                "requiredClusterSelector": {
                    "labelSelector": {"matchLabels": {"tier": "gold"}},
                    "claimSelector": {
                        "matchExpressions": [{"key": "region", "operator": "In", "values": ["eu"]}]
                    },
                }
            },
            {
                "requiredClusterSelector": {
                    "labelSelector": {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}
                }
            },
        ]
    }
    result = evaluate(spec, clusters, now)
    assert result.decided == ("both", "gpu")
    assert result.excluded["label-only"] == "none of the 2 predicates matches"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"key": "env", "operator": "In", "values": ["prod", "dev"]}, ("dev", "prod")),
        ({"key": "env", "operator": "NotIn", "values": ["prod"]}, ("dev", "none")),
        ({"key": "env", "operator": "Exists"}, ("dev", "prod")),
        ({"key": "env", "operator": "DoesNotExist"}, ("none",)),
    ],
)
def test_label_selector_operators_follow_kubernetes(
    cluster: Make, now: datetime, expression: dict[str, Any], expected: tuple[str, ...]
) -> None:
    clusters = [
        cluster("prod", labels={"env": "prod"}),
        cluster("dev", labels={"env": "dev"}),
        cluster("none"),
    ]
    spec = {
        "predicates": [
            {"requiredClusterSelector": {"labelSelector": {"matchExpressions": [expression]}}}
        ]
    }
    assert evaluate(spec, clusters, now).decided == expected


def test_a_failing_predicate_says_which_requirement_failed(cluster: Make, now: datetime) -> None:
    spec = {
        "predicates": [
            {
                "requiredClusterSelector": {
                    "claimSelector": {
                        "matchExpressions": [
                            {"key": "region", "operator": "In", "values": ["eu", "us"]}
                        ]
                    }
                }
            }
        ]
    }
    result = evaluate(spec, [cluster("a", claims={"region": "ap"})], now)
    assert result.excluded["a"] == "predicate does not match: claim region In (eu, us)"


def test_invalid_selector_operator_is_an_input_error_with_the_field_path(now: datetime) -> None:
    spec = {
        "predicates": [
            {
                "requiredClusterSelector": {
                    "labelSelector": {"matchExpressions": [{"key": "a", "operator": "Equals"}]}
                }
            }
        ]
    }
    with pytest.raises(InputError) as error:
        evaluate(spec, [], now)
    assert str(error.value) == (
        "spec.predicates[0].requiredClusterSelector.labelSelector.matchExpressions[0].operator: "
        "'Equals' is not a valid operator; expected one of In, NotIn, Exists, DoesNotExist"
    )


@pytest.mark.parametrize("key", ["-dataset", "example.com/", "Example.com/dataset", "dataset\n"])
def test_a_bad_selector_label_key_is_an_input_error_naming_it(key: str, now: datetime) -> None:
    spec = {
        "predicates": [{"requiredClusterSelector": {"labelSelector": {"matchLabels": {key: "x"}}}}]
    }
    with pytest.raises(InputError) as error:
        evaluate(spec, [], now)
    assert str(error.value) == (
        f"spec.predicates[0].requiredClusterSelector.labelSelector.matchLabels.{key}: {key!r} is "
        "not a valid key (an optional DNS prefix and '/', then at most 63 letters, digits, '-', "
        "'_' or '.', starting and ending with a letter or digit)"
    )


@pytest.mark.parametrize("value", ["digits-", "a b", "v" * 64, "digits\n", "\n"])
def test_a_bad_selector_label_value_is_an_input_error_naming_it(value: str, now: datetime) -> None:
    expression = {"key": "region", "operator": "In", "values": ["eu", value]}
    spec = {
        "predicates": [
            {"requiredClusterSelector": {"claimSelector": {"matchExpressions": [expression]}}}
        ]
    }
    with pytest.raises(InputError) as error:
        evaluate(spec, [], now)
    assert str(error.value) == (
        "spec.predicates[0].requiredClusterSelector.claimSelector.matchExpressions[0].values[1]: "
        f"{value!r} is not a valid label value (at most 63 letters, digits, '-', '_' or '.', "
        "starting and ending with a letter or digit)"
    )


def test_unknown_spec_fields_are_refused(now: datetime) -> None:
    with pytest.raises(InputError) as error:
        evaluate({"numberOfCluster": 3}, [], now)
    assert str(error.value).startswith("spec: unknown field 'numberOfCluster'; expected one of ")


def test_cel_expressions_select_on_the_managed_cluster_object(cluster: Make, now: datetime) -> None:
    old = cluster("old", labels={"version": "1.28.3"}, cpu="4", memory="8Gi")
    new = cluster("new", labels={"version": "1.31.0"}, cpu="32", memory="128Gi")
    spec = {
        "predicates": [
            {
                "requiredClusterSelector": {
                    "celSelector": {
                        "celExpressions": [
                            'managedCluster.metadata.labels["version"]'
                            '.versionIsGreaterThan("1.30.0")',
                            'managedCluster.status.allocatable.memory.quantityIsGreaterThan("64Gi")',
                            'managedCluster.metadata.name.startsWith("n")',
                        ]
                    }
                }
            }
        ]
    }
    result = evaluate(spec, [old, new], now)
    assert result.decided == ("new",)
    assert result.excluded["old"] == "predicate does not match: celExpressions are not all true"


def test_cel_evaluation_errors_are_non_matches_as_in_ocm(cluster: Make, now: datetime) -> None:
    spec = {
        "predicates": [
            {
                "requiredClusterSelector": {
                    "celSelector": {
                        "celExpressions": ['managedCluster.metadata.labels["tier"] == "gold"']
                    }
                }
            }
        ]
    }
    clusters = [cluster("gold", labels={"tier": "gold"}), cluster("unlabelled")]
    assert evaluate(spec, clusters, now).decided == ("gold",)


def test_cel_scores_and_parse_json_use_the_given_addon_scores(cluster: Make, now: datetime) -> None:
    spec = {
        "predicates": [
            {
                "requiredClusterSelector": {
                    "celSelector": {
                        "celExpressions": [
                            'managedCluster.scores("usage")'
                            '.exists(s, s.name == "cpu" && s.value < 50)',
                            '"{\\"ok\\": true}".parseJSON().ok',
                        ]
                    }
                }
            }
        ]
    }
    scores = {"idle": {"usage": {"cpu": 10}}, "busy": {"usage": {"cpu": 90}}}
    clusters = [cluster("idle"), cluster("busy"), cluster("unscored")]
    assert evaluate(spec, clusters, now, addon_scores=scores).decided == ("idle",)


def test_a_cel_compile_error_names_the_predicate_and_expression(now: datetime) -> None:
    spec = {
        "predicates": [
            {},
            {"requiredClusterSelector": {"celSelector": {"celExpressions": ["true", "1 +"]}}},
        ]
    }
    with pytest.raises(InputError) as error:
        evaluate(spec, [], now)
    message = str(error.value)
    assert message.startswith(
        "spec.predicates[1].requiredClusterSelector.celSelector.celExpressions[1]: "
        "'1 +' does not compile: "
    )


def test_an_unsupported_cel_function_is_an_input_error(now: datetime) -> None:
    spec = {
        "predicates": [
            {
                "requiredClusterSelector": {
                    "celSelector": {"celExpressions": ["managedCluster.isHealthy()"]}
                }
            }
        ]
    }
    with pytest.raises(InputError) as error:
        evaluate(spec, [], now)
    assert str(error.value) == (
        "spec.predicates[0].requiredClusterSelector.celSelector.celExpressions[0]: "
        "'managedCluster.isHealthy()' calls isHealthy(), which offline placement does not "
        "support; supported OCM functions are scores, versionIsGreaterThan, versionIsLessThan, "
        "quantityIsGreaterThan, quantityIsLessThan, parseJSON"
    )


def test_a_cel_variable_other_than_managed_cluster_is_an_input_error(
    cluster: Make, now: datetime
) -> None:
    spec = {
        "predicates": [
            {"requiredClusterSelector": {"celSelector": {"celExpressions": ["cluster.x == 1"]}}}
        ]
    }
    with pytest.raises(InputError) as error:
        evaluate(spec, [cluster("a")], now)
    assert str(error.value) == (
        "spec.predicates[0].requiredClusterSelector.celSelector.celExpressions[0]: "
        "'cluster.x == 1': Undefined variable or function: 'cluster'; "
        "the only variable is managedCluster"
    )


def taint(key: str, effect: str = "NoSelect", value: str = "", added: str = "") -> dict[str, str]:
    result = {"key": key, "effect": effect}
    if value:
        result["value"] = value
    if added:
        result["timeAdded"] = added
    return result


def test_no_select_taints_need_a_matching_toleration(cluster: Make, now: datetime) -> None:
    clusters = [
        cluster("plain"),
        cluster("gpu", taints=[taint("gpu", value="a100")]),
        cluster("gpu-h100", taints=[taint("gpu", value="h100")]),
        cluster("maintenance", taints=[taint("maintenance")]),
    ]
    assert evaluate({}, clusters, now).decided == ("plain",)
    equal = {"tolerations": [{"key": "gpu", "operator": "Equal", "value": "a100"}]}
    assert evaluate(equal, clusters, now).decided == ("gpu", "plain")
    exists = {"tolerations": [{"key": "gpu", "operator": "Exists"}]}
    result = evaluate(exists, clusters, now)
    assert result.decided == ("gpu", "gpu-h100", "plain")
    assert result.excluded["maintenance"] == "taint maintenance:NoSelect is not tolerated"
    everything = {"tolerations": [{"operator": "Exists"}]}
    assert len(evaluate(everything, clusters, now).decided) == 4
    wrong_effect = {
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "PreferNoSelect"}]
    }
    assert evaluate(wrong_effect, clusters, now).decided == ("plain",)


def test_prefer_no_select_taints_never_filter(cluster: Make, now: datetime) -> None:
    clusters = [cluster("busy", taints=[taint("busy", effect="PreferNoSelect")])]
    assert evaluate({}, clusters, now).decided == ("busy",)


def test_no_select_if_new_keeps_clusters_already_decided(cluster: Make, now: datetime) -> None:
    clusters = [
        cluster("kept", taints=[taint("draining", effect="NoSelectIfNew")]),
        cluster("new", taints=[taint("draining", effect="NoSelectIfNew")]),
    ]
    assert evaluate({}, clusters, now, previous=["kept"]).decided == ("kept",)


def test_toleration_seconds_count_from_time_added(cluster: Make, now: datetime) -> None:
    def added(seconds_ago: int) -> str:
        return (now - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")

    unreachable = "cluster.open-cluster-management.io/unreachable"
    clusters = [
        cluster("recent", taints=[taint(unreachable, added=added(299))]),
        cluster("expired", taints=[taint(unreachable, added=added(300))]),
        cluster("unknown-time", taints=[taint(unreachable)]),
    ]
    spec = {"tolerations": [{"key": unreachable, "operator": "Exists", "tolerationSeconds": 300}]}
    assert evaluate(spec, clusters, now).decided == ("recent",)
    forever = {"tolerations": [{"key": unreachable, "operator": "Exists"}]}
    assert evaluate(forever, clusters, now).decided == ("expired", "recent", "unknown-time")


def test_toleration_rules_ocm_checks_are_input_errors(now: datetime) -> None:
    with pytest.raises(InputError) as error:
        evaluate({"tolerations": [{"operator": "Equal", "value": "x"}]}, [], now)
    assert str(error.value) == "spec.tolerations[0]: if the key is empty, operator must be Exists"
    with pytest.raises(InputError) as error:
        evaluate({"tolerations": [{"key": "k", "operator": "Exists", "value": "x"}]}, [], now)
    assert str(error.value) == (
        "spec.tolerations[0]: if the operator is Exists, the value should be empty"
    )


def test_spread_policy_is_refused_offline(now: datetime) -> None:
    spec = {
        "spreadPolicy": {
            "spreadConstraints": [{"topologyKey": "region", "topologyKeyType": "Claim"}]
        }
    }
    with pytest.raises(InputError) as error:
        evaluate(spec, [], now)
    assert (
        str(error.value) == "spec.spreadPolicy: spreadPolicy is not supported by offline placement"
    )


def test_clusters_being_deleted_are_not_available(cluster: Make, now: datetime) -> None:
    leaving = cluster("leaving")
    leaving["metadata"]["deletionTimestamp"] = "2025-05-31T00:00:00Z"
    result = evaluate({}, [leaving, cluster("staying")], now)
    assert result.decided == ("staying",)
    assert result.excluded["leaving"] == "being deleted"


@pytest.mark.parametrize(
    ("version", "selected"),
    [
        ("v1.30.1", True),
        ("1.30.0+k3s1", False),  # build metadata is ignored: equal, not greater
        ("v1.30.1-rc.1", True),
        ("v1.30.0-rc.1", False),  # a pre-release is lower than its release
        ("1.31", False),  # not a semantic version: an evaluation error, so no match
    ],
)
def test_version_comparison_follows_semver_precedence(
    cluster: Make, now: datetime, version: str, selected: bool
) -> None:
    expression = 'managedCluster.metadata.labels["v"].versionIsGreaterThan("1.30.0")'
    spec = {
        "predicates": [
            {"requiredClusterSelector": {"celSelector": {"celExpressions": [expression]}}}
        ]
    }
    decided = evaluate(spec, [cluster("a", labels={"v": version})], now).decided
    assert decided == (("a",) if selected else ())

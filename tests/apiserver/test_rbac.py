"""The reconcile job's least privilege, enforced by a real API server's RBAC authorizer.

The identity is the experiment's own ServiceAccount with a token from the TokenRequest
API, bound only by what `fl-gitops render` wrote in hub/reconcile-rbac.yaml. With it, a
real reconcile pass reads the PlacementDecisions and the ManifestWorks' status and
commits round 1, then round 2; every write to the hub and every read of a Secret or a
ManagedCluster is refused with the authorizer's own 403.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from fl_gitops.devhub import ApiServer
from fl_gitops.gitops import ConfigRepo
from fl_gitops.hub import HubForbidden, KubernetesHub, translate
from fl_gitops.labels import EXPERIMENT_LABEL
from fl_gitops.reconcile import Aggregate, StartRound, Wait, reconcile_once

from ..reconcile.fleet import EXP, PATH, git
from .hubside import World, delete_objects, make_world

WORKS = ("work.open-cluster-management.io", "v1", "manifestworks")
CLUSTERS_API = ("cluster.open-cluster-management.io", "v1", "managedclusters")
DECISIONS = ("cluster.open-cluster-management.io", "v1beta1", "placementdecisions")
OTHER = "other-exp"


@pytest.fixture(scope="module")
def world(apiserver: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The experiment, placed on three clusters, plus another experiment's work and a Secret."""
    from kubernetes import client as k8s

    namespace = f"t-{uuid.uuid4().hex[:10]}"
    with apiserver.api_client() as admin:
        core = k8s.CoreV1Api(admin)
        core.create_namespace({"metadata": {"name": namespace}})
        world = make_world(tmp_path_factory.mktemp("rbac"), admin, apiserver, namespace)
        core.create_namespaced_secret(
            namespace,
            {
                "metadata": {"name": "store-credentials"},
                "stringData": {"AWS_SECRET_ACCESS_KEY": "do-not-read-me"},
            },
        )
        # another experiment's work in the first cluster's namespace
        (path,) = sorted((world.rendered / "works").glob("*.yaml"))[:1]
        other = yaml.safe_load(path.read_text())
        other["metadata"]["name"] = f"fl-{OTHER}"
        other["metadata"]["namespace"] = world.clusters[0]
        other["metadata"]["labels"][EXPERIMENT_LABEL] = OTHER
        group, version, plural = WORKS
        k8s.CustomObjectsApi(admin).create_namespaced_custom_object(
            group, version, world.clusters[0], plural, other
        )
        try:
            yield world
        finally:
            api = k8s.CustomObjectsApi(admin)
            for label in (EXP, OTHER):
                listed = api.list_cluster_custom_object(
                    group, version, plural, label_selector=f"{EXPERIMENT_LABEL}={label}"
                )
                for work in listed["items"]:
                    meta = work["metadata"]
                    api.delete_namespaced_custom_object(
                        group, version, meta["namespace"], plural, meta["name"]
                    )
            delete_objects(admin, [o for o in world.rbac if "namespace" not in o["metadata"]])
            core.delete_namespace(namespace)


@pytest.fixture(scope="module")
def sa_client(apiserver: ApiServer, world: World) -> Iterator[Any]:
    """An ``ApiClient`` that authenticates with the ServiceAccount's token."""
    with apiserver.api_client(token=world.token) as client:
        yield client


def _user(world: World) -> str:
    return f"system:serviceaccount:{world.namespace}:{world.service_account}"


def test_the_token_is_the_experiments_service_account_and_nothing_more(
    world: World, admin: Any
) -> None:
    from kubernetes import client as k8s

    review = k8s.AuthenticationV1Api(admin).create_token_review(
        k8s.V1TokenReview(spec=k8s.V1TokenReviewSpec(token=world.token))
    )
    assert review.status.authenticated is True
    assert review.status.user.username == _user(world)
    assert review.status.user.groups == [
        "system:serviceaccounts",
        f"system:serviceaccounts:{world.namespace}",
        "system:authenticated",
    ]
    assert world.service_account == f"{EXP}-reconcile"


def _can(client: Any, verb: str, resource: str, group: str, namespace: str = "") -> Any:
    from kubernetes import client as k8s

    review = k8s.AuthorizationV1Api(client).create_self_subject_access_review(
        k8s.V1SelfSubjectAccessReview(
            spec=k8s.V1SelfSubjectAccessReviewSpec(
                resource_attributes=k8s.V1ResourceAttributes(
                    verb=verb, resource=resource, group=group, namespace=namespace or None
                )
            )
        )
    )
    return review.status


def test_the_rendered_rbac_allows_exactly_reading_decisions_and_works(
    world: World, sa_client: Any
) -> None:
    works_reader = next(o for o in world.rbac if o["kind"] == "ClusterRole")["metadata"]["name"]
    by_role = (
        f'RBAC: allowed by RoleBinding "{world.service_account}/{world.namespace}" of Role '
        f'"{world.service_account}" to ServiceAccount "{world.service_account}/{world.namespace}"'
    )
    by_cluster_role = (
        f'RBAC: allowed by ClusterRoleBinding "{works_reader}" of ClusterRole '
        f'"{works_reader}" to ServiceAccount "{world.service_account}/{world.namespace}"'
    )
    work_group, decision_group = WORKS[0], DECISIONS[0]
    for verb in ("get", "list", "watch"):
        # works in every cluster's namespace (all namespaces at once, for the list by label)
        for namespace in ("", world.clusters[0]):
            status = _can(sa_client, verb, "manifestworks", work_group, namespace)
            assert (status.allowed, status.reason) == (True, by_cluster_role)
        for resource in ("placementdecisions", "placements"):
            status = _can(sa_client, verb, resource, decision_group, world.namespace)
            assert (status.allowed, status.reason) == (True, by_role)
        # placement decisions of other namespaces are not its business
        status = _can(sa_client, verb, "placementdecisions", decision_group, "default")
        assert status.allowed is False
    for verb in ("create", "update", "patch", "delete", "deletecollection"):
        for namespace in ("", world.clusters[0]):
            assert _can(sa_client, verb, "manifestworks", work_group, namespace).allowed is False
        assert (
            _can(sa_client, verb, "placementdecisions", decision_group, world.namespace).allowed
            is False
        )


def test_a_reconcile_pass_as_the_service_account_starts_and_aggregates_a_round(
    world: World, sa_client: Any
) -> None:
    hub = KubernetesHub(sa_client)
    repo = ConfigRepo.open(str(world.remote), branch="main", workdir=world.tmp / "reconciler")

    def one_pass() -> Any:
        return reconcile_once(repo, hub, path=PATH, now=datetime.now(UTC), sleep=lambda s: None)

    # round 1: the roster is the placement's decisions, read as the ServiceAccount
    first = one_pass()
    assert (first.action, first.message) == (
        StartRound(tuple(world.clusters)),
        "round 1: 3 clusters placed",
    )
    roster = yaml.safe_load(git(world.remote, "show", f"main:{PATH}/roster.yaml"))
    assert roster["clusters"] == world.clusters

    # Argo CD applies the works; the agent has not reported: the pass reads them and waits
    assert len(world.fleet.sync()) == 3
    waiting = one_pass()
    assert isinstance(waiting.action, Wait)
    assert re.fullmatch(
        r"0 succeeded, 0 failed, 3 still running \(\d+s of 1800s\)", waiting.message
    )
    statuses = hub.job_statuses(
        work_name=f"fl-{EXP}", job_name=f"fl-{EXP}-r1", clusters=world.clusters, experiment=EXP
    )
    assert {c: (s.state.value, s.reason) for c, s in statuses.items()} == {
        c: ("Unknown", f"the work agent has not reported on ManifestWork fl-{EXP} yet")
        for c in world.clusters
    }

    # every Job done, each update in the store: the round is aggregated
    assert world.fleet.run_jobs() == world.clusters
    done = one_pass()
    assert (done.action, done.message) == (
        Aggregate(tuple(world.clusters), (), timed_out=False),
        "round 1 aggregated from 3 clusters",
    )
    record = yaml.safe_load(git(world.remote, "show", f"main:{PATH}/.history/round-1.yaml"))
    assert record["contributors"] == world.clusters
    assert record["status"] == {c: "Succeeded" for c in world.clusters}
    assert git(world.remote, "log", "-1", "--format=%s", "main") == f"fl({EXP}): round 1 -> 2"


# -- what the same identity may not do -------------------------------------------------


def _forbidden(world: World, sa: Any) -> dict[str, tuple[Callable[[], Any], str]]:
    """Each refused call, with the authorizer's message after "User <sa> cannot "."""
    from kubernetes import client as k8s

    core, custom = k8s.CoreV1Api(sa), k8s.CustomObjectsApi(sa)
    ns, cluster = world.namespace, world.clusters[0]
    work_group, version, works = WORKS
    mc_group, mc_version, managed = CLUSTERS_API
    dc_group, dc_version, decisions = DECISIONS
    other, own = f"fl-{OTHER}", f"fl-{EXP}"
    in_ns = f'in the namespace "{ns}"'
    in_cluster = f'in the namespace "{cluster}"'
    new_work = {
        "apiVersion": f"{work_group}/{version}",
        "kind": "ManifestWork",
        "metadata": {"name": "fl-intruder", "namespace": cluster},
        "spec": {"workload": {"manifests": []}},
    }
    label = {"metadata": {"labels": {EXPERIMENT_LABEL: EXP}}}
    wm = f"{works}.{work_group}"
    mc = f"{managed}.{mc_group}"
    return {
        "get a Secret in its namespace": (
            lambda: core.read_namespaced_secret("store-credentials", ns),
            f'secrets "store-credentials" is forbidden: User "{_user(world)}" cannot get '
            f'resource "secrets" in API group "" {in_ns}',
        ),
        "list Secrets in its namespace": (
            lambda: core.list_namespaced_secret(ns),
            f'secrets is forbidden: User "{_user(world)}" cannot list resource "secrets" '
            f'in API group "" {in_ns}',
        ),
        "list Secrets in all namespaces": (
            lambda: core.list_secret_for_all_namespaces(),
            f'secrets is forbidden: User "{_user(world)}" cannot list resource "secrets" '
            'in API group "" at the cluster scope',
        ),
        "create a ManifestWork": (
            lambda: custom.create_namespaced_custom_object(
                work_group, version, cluster, works, new_work
            ),
            f'{wm} is forbidden: User "{_user(world)}" cannot create resource "{works}" '
            f'in API group "{work_group}" {in_cluster}',
        ),
        "patch another experiment's ManifestWork": (
            lambda: custom.patch_namespaced_custom_object(
                work_group, version, cluster, works, other, label
            ),
            f'{wm} "{other}" is forbidden: User "{_user(world)}" cannot patch resource '
            f'"{works}" in API group "{work_group}" {in_cluster}',
        ),
        "delete another experiment's ManifestWork": (
            lambda: custom.delete_namespaced_custom_object(
                work_group, version, cluster, works, other
            ),
            f'{wm} "{other}" is forbidden: User "{_user(world)}" cannot delete resource '
            f'"{works}" in API group "{work_group}" {in_cluster}',
        ),
        "write its own ManifestWork's status": (
            lambda: custom.patch_namespaced_custom_object_status(
                work_group, version, cluster, works, own, {"status": {"conditions": []}}
            ),
            f'{wm} "{own}" is forbidden: User "{_user(world)}" cannot patch resource '
            f'"{works}/status" in API group "{work_group}" {in_cluster}',
        ),
        "delete every ManifestWork of a cluster": (
            lambda: custom.delete_collection_namespaced_custom_object(
                work_group, version, cluster, works
            ),
            f'{wm} is forbidden: User "{_user(world)}" cannot deletecollection resource '
            f'"{works}" in API group "{work_group}" {in_cluster}',
        ),
        "get a ManagedCluster": (
            lambda: custom.get_cluster_custom_object(mc_group, mc_version, managed, cluster),
            f'{mc} "{cluster}" is forbidden: User "{_user(world)}" cannot get resource '
            f'"{managed}" in API group "{mc_group}" at the cluster scope',
        ),
        "list ManagedClusters": (
            lambda: custom.list_cluster_custom_object(mc_group, mc_version, managed),
            f'{mc} is forbidden: User "{_user(world)}" cannot list resource "{managed}" '
            f'in API group "{mc_group}" at the cluster scope',
        ),
        "patch a ManagedCluster": (
            lambda: custom.patch_cluster_custom_object(
                mc_group, mc_version, managed, cluster, {"spec": {"hubAcceptsClient": False}}
            ),
            f'{mc} "{cluster}" is forbidden: User "{_user(world)}" cannot patch resource '
            f'"{managed}" in API group "{mc_group}" at the cluster scope',
        ),
        "rewrite its placement's decisions": (
            lambda: custom.patch_namespaced_custom_object_status(
                dc_group,
                dc_version,
                ns,
                decisions,
                f"{EXP}-decision-1",
                {"status": {"decisions": []}},
            ),
            f'{decisions}.{dc_group} "{EXP}-decision-1" is forbidden: User "{_user(world)}" '
            f'cannot patch resource "{decisions}/status" in API group "{dc_group}" {in_ns}',
        ),
    }


FORBIDDEN = [
    "get a Secret in its namespace",
    "list Secrets in its namespace",
    "list Secrets in all namespaces",
    "create a ManifestWork",
    "patch another experiment's ManifestWork",
    "delete another experiment's ManifestWork",
    "write its own ManifestWork's status",
    "delete every ManifestWork of a cluster",
    "get a ManagedCluster",
    "list ManagedClusters",
    "patch a ManagedCluster",
    "rewrite its placement's decisions",
]


def test_every_forbidden_case_is_listed(world: World, sa_client: Any) -> None:
    assert sorted(_forbidden(world, sa_client)) == sorted(FORBIDDEN)


@pytest.mark.parametrize("case", FORBIDDEN)
def test_the_reconcile_identity_is_forbidden_to(case: str, world: World, sa_client: Any) -> None:
    from kubernetes import client as k8s

    call, message = _forbidden(world, sa_client)[case]
    with pytest.raises(k8s.ApiException) as caught:
        call()
    assert caught.value.status == 403
    error = translate(caught.value, f"hub: {case}")
    assert isinstance(error, HubForbidden)
    assert str(error) == f"hub: {case}: 403 Forbidden: {message}"


def test_nothing_forbidden_was_changed(world: World, admin: Any) -> None:
    from kubernetes import client as k8s

    custom = k8s.CustomObjectsApi(admin)
    group, version, plural = WORKS
    work = custom.get_namespaced_custom_object(
        group, version, world.clusters[0], plural, f"fl-{OTHER}"
    )
    assert work["metadata"]["labels"][EXPERIMENT_LABEL] == OTHER
    assert "status" not in work
    mc_group, mc_version, managed = CLUSTERS_API
    cluster = custom.get_cluster_custom_object(mc_group, mc_version, managed, world.clusters[0])
    assert cluster["spec"]["hubAcceptsClient"] is True

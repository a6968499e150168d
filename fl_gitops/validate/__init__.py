"""Strict validation of the Kubernetes objects fl-gitops renders.

Every rendered object (Placement, PlacementDecision preview, ManifestWork and the
ConfigMap and Job inside it, CronJob, ServiceAccount, Role, RoleBinding, Argo CD
Application, ApplicationSet, AppProject, ConfigMap patches, kustomization.yaml) must
validate against its real schema with unknown fields rejected, plus the name and label
rules Kubernetes enforces outside its schemas. ``docs/validation.md`` lists the sources.

    problems = validate_tree(Path("experiments/digits-fedavg"))
    for problem in problems:
        print(problem)     # file#doc: Kind/name: spec.foo: message
"""

from fl_gitops.validate.catalog import crd_schema, known_crds, kubernetes_schema_version
from fl_gitops.validate.names import (
    check_annotation_key,
    check_configmap_key,
    check_dns1035_label,
    check_dns1123_label,
    check_dns1123_subdomain,
    check_label_key,
    check_label_value,
)
from fl_gitops.validate.objects import validate_object
from fl_gitops.validate.problem import Problem, format_path
from fl_gitops.validate.size import MANIFEST_LIMIT, manifests_size
from fl_gitops.validate.strict import strict
from fl_gitops.validate.tree import validate_tree

__all__ = [
    "MANIFEST_LIMIT",
    "Problem",
    "check_annotation_key",
    "check_configmap_key",
    "check_dns1035_label",
    "check_dns1123_label",
    "check_dns1123_subdomain",
    "check_label_key",
    "check_label_value",
    "crd_schema",
    "format_path",
    "known_crds",
    "kubernetes_schema_version",
    "manifests_size",
    "strict",
    "validate_object",
    "validate_tree",
]

"""Schemas shipped with fl-gitops, as data.

``crds/`` holds structural copies of the upstream OCM and Argo CD CRD schemas (written by
``python -m fl_gitops.schemas.vendor /work/shared``) plus the hand-written AppProject schema;
``crds/SOURCES.json`` says where each one came from. ``kustomization.json`` is a small
hand-written schema for the kustomization.yaml fields fl-gitops renders. The code that
reads them is in ``fl_gitops.validate``.
"""

__all__: list[str] = []

"""The model store: where global models, updates and strategy state meet between rounds.

An edge, beside ``gitops/`` and ``hub/``: the only package that does I/O on models, behind
an fsspec URI (a path, ``memory://``, ``s3://``...). The client writes its update here and
the reconcile job reads it back; they never talk to each other. It imports fsspec, the
digests of ``fl_gitops.tensors`` and ``fl_gitops.errors``, and nothing that aggregates,
trains or builds models (an import-graph test holds it there). docs/store.md has the layout.
"""

from fl_gitops.store._store import (
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    OPTIONS_FILE_ENV,
    MalformedMetadata,
    ModelStore,
    NotInStore,
    UnreadableUpdate,
    block_list_path,
    check_cluster_name,
    check_digest,
    held_path,
    is_cluster_name,
    open_regular,
    parse_metadata,
    read_regular,
    storage_options_from_env,
)

__all__ = [
    "MAX_METADATA_BYTES",
    "MAX_METADATA_DEPTH",
    "OPTIONS_FILE_ENV",
    "MalformedMetadata",
    "ModelStore",
    "NotInStore",
    "UnreadableUpdate",
    "block_list_path",
    "check_cluster_name",
    "check_digest",
    "held_path",
    "is_cluster_name",
    "open_regular",
    "parse_metadata",
    "read_regular",
    "storage_options_from_env",
]

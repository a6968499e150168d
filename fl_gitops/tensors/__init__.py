"""The safetensors format, read and written tensor by tensor, and the digests that name files.

Everyone who touches a model file uses this package: the model store, the update checks
and aggregation on the hub, the round-0 weights, and the client. So it sits at the bottom:
it imports numpy and the standard library, and nothing of fl_gitops but ``fl_gitops.errors``
(an import-graph test holds it there). Nothing here ever unpickles.

- ``_safetensors``: the header (parsed with bounds before it is trusted), bounded-memory
  readers (``TensorReader``, ``Lockstep``), the output ``Layout`` and ``serialize``.
- ``_digest``: ``sha256:<hex>`` (models) and ``blake3-blocks:<hex>`` (updates) of bytes or
  of a local file, and what a digest looks like.
- ``_blocklist``: the update digest a slice can be checked against (a list of BLAKE3 block
  hashes, kept beside the update), for shards that read only their slice.
- ``_bf16``: BF16 tensors without a numpy dtype for them: held as opaque 2-byte elements,
  widened exactly to float32 and rounded back once (no ml_dtypes: 0.8 s to import).
- ``_atomic``: the one way files are written (temporary name, fsync, rename).
"""

from fl_gitops.tensors._atomic import replaced_atomically, write_atomic
from fl_gitops.tensors._bf16 import (
    BF16,
    Widener,
    is_bf16,
    narrow,
    narrow_into,
    value_dtype,
    values_f64,
    widen,
    widen_f16,
)
from fl_gitops.tensors._blocklist import BLOCK_BYTES, BlockList, BlockListError
from fl_gitops.tensors._buffers import LINE, ThreadBuffers, aligned_empty, in_step
from fl_gitops.tensors._digest import (
    DIGEST_PATTERN,
    UPDATE_ALGORITHM,
    UPDATE_DIGEST_PATTERN,
    Hasher,
    digest_file,
    is_digest,
    is_update_digest,
    model_path,
    new_hasher,
    sha256_digest,
    sha256_file,
    update_block_list,
    update_block_list_file,
    update_digest,
    update_digest_file,
)
from fl_gitops.tensors._safetensors import (
    DEFAULT_CHUNK,
    DTYPES,
    MAX_HEADER_BYTES,
    Header,
    HeaderError,
    Layout,
    Lockstep,
    ReadFailed,
    TensorInfo,
    TensorReader,
    load,
    load_bytes,
    parse_header,
    read_ahead,
    read_header,
    same_layout,
    serialize,
)

__all__ = [
    "BF16",
    "BLOCK_BYTES",
    "DEFAULT_CHUNK",
    "DIGEST_PATTERN",
    "DTYPES",
    "LINE",
    "MAX_HEADER_BYTES",
    "UPDATE_ALGORITHM",
    "UPDATE_DIGEST_PATTERN",
    "BlockList",
    "BlockListError",
    "Hasher",
    "Header",
    "HeaderError",
    "Layout",
    "Lockstep",
    "ReadFailed",
    "TensorInfo",
    "TensorReader",
    "ThreadBuffers",
    "Widener",
    "aligned_empty",
    "digest_file",
    "in_step",
    "is_bf16",
    "is_digest",
    "is_update_digest",
    "load",
    "load_bytes",
    "model_path",
    "narrow",
    "narrow_into",
    "new_hasher",
    "parse_header",
    "read_ahead",
    "read_header",
    "replaced_atomically",
    "same_layout",
    "serialize",
    "sha256_digest",
    "sha256_file",
    "update_block_list",
    "update_block_list_file",
    "update_digest",
    "update_digest_file",
    "value_dtype",
    "values_f64",
    "widen",
    "widen_f16",
    "write_atomic",
]

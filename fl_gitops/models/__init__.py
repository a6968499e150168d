"""What a model is, without torch: its tensor specs and its round-0 weights, with numpy.

The renderer and the reconcile job need round 0's model (its bytes, its digest) on machines
without torch, so this package describes the built-in models as tensor specs (``_specs``)
and draws their initial weights with numpy (``_initial``). Importing it never imports
torch: only converting a torch ``.pt`` checkpoint does, inside that function.

The torch modules themselves are apart, in ``fl_gitops.models.torch`` (``build_model``,
``load_tensors``, ``init_model_from_entrypoint``...), which imports this package and is
imported only by those who train: the client, tests, benchmarks. Nothing here imports it
(an import-graph test holds the arrow one way), and nothing here imports the store, the
aggregation or the client.
"""

from fl_gitops.models._initial import (
    bytes_to_tensors,
    checkpoint_model_bytes,
    digest_of,
    initial_model_bytes,
    initial_model_digest,
    read_checkpoint,
    tensors_to_bytes,
    torch_checkpoint_to_tensors,
)
from fl_gitops.models._specs import (
    DIGITS_CLASSES,
    DIGITS_FEATURES,
    TensorSpec,
    builtin_args,
    builtin_specs,
    cnn_side,
    data_dims,
    model_dims,
    synthetic_args,
)

__all__ = [
    "DIGITS_CLASSES",
    "DIGITS_FEATURES",
    "TensorSpec",
    "builtin_args",
    "builtin_specs",
    "bytes_to_tensors",
    "checkpoint_model_bytes",
    "cnn_side",
    "data_dims",
    "digest_of",
    "initial_model_bytes",
    "initial_model_digest",
    "model_dims",
    "read_checkpoint",
    "synthetic_args",
    "tensors_to_bytes",
    "torch_checkpoint_to_tensors",
]

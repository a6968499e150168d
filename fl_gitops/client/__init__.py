"""One cluster's side of a round: what the rendered Job runs, start to finish.

- ``roundconfig``: the round config the Job reads, checked field by field;
- ``data`` and ``partition``: the cluster's training data and its part of a built-in set;
- ``train``: local training and evaluation (imports torch);
- ``job``: the client run (``run_client``): config, store, global model, data, training, update;
- ``report``: the update reported through the hub (the round's result ConfigMap), which is
  what the reconcile pass trusts, not the store's metadata.

This is the only package, with ``fl_gitops.models.torch``, that imports torch at module
level (``train``); the hub's side (aggregation, the store) imports nothing from here, and
importing this package itself does not import torch: ``run_client`` imports it once a
config has passed its checks. Re-exported here: the client run and the round config.
"""

from fl_gitops.client.job import (
    CLUSTER_ENV,
    CONFIG_ENV,
    Tamper,
    byzantine_update,
    run_client,
    run_client_file,
)
from fl_gitops.client.roundconfig import (
    OptimizerConfig,
    RoundConfig,
    TrainConfig,
    load_round_config,
    parse_round_config,
)

__all__ = [
    "CLUSTER_ENV",
    "CONFIG_ENV",
    "OptimizerConfig",
    "RoundConfig",
    "Tamper",
    "TrainConfig",
    "byzantine_update",
    "load_round_config",
    "parse_round_config",
    "run_client",
    "run_client_file",
]

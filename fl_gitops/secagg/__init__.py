"""Secure aggregation (SecAgg+, Bell et al. 2020) over fl-gitops' pull-only channels.

The hub, the store and Git never hold one cluster's update in the clear: each cluster
uploads its change masked with pairwise masks (shared with its neighbours through X25519)
and a self mask (whose seed it Shamir-shares among them), and only the sum of the
survivors' changes is ever unmasked, after the survivors reveal what the dropped
clusters' masks need. Up to ``k + 1 - t`` of a cluster's holders may drop.

- ``_params``: the parameters and the integer grid (the quantisation error bound).
- ``_quantize``: changes to integers and the mean back.
- ``_prg``: masks from seeds (AES-CTR).
- ``_crypto``: X25519, HKDF, AES-GCM, Shamir; nothing home-made.
- ``_graph``, ``_context``: who masks with whom, and what a round's parties agree on.
- ``_client``: a cluster's four phases. ``_server``: the unmasking.
- ``_loop``: what the loop needs around them: the round's record in Git (``SecAggRound``),
  the store's names for the messages, a model's change as one flat vector. The clusters'
  Jobs are ``fl_gitops.client.secure``, the hub's phases ``fl_gitops.reconcile._secure``.
"""

from fl_gitops.secagg._client import (
    ClientKeys,
    Reveal,
    advertise,
    masked_input,
    open_share,
    reveal,
    share_keys,
)
from fl_gitops.secagg._context import Advertisement, RoundContext
from fl_gitops.secagg._errors import BadMessage, NotEnoughShares, SecAggError
from fl_gitops.secagg._params import MIN_LEVELS, SecAggParams
from fl_gitops.secagg._quantize import dequantize_mean, quantize
from fl_gitops.secagg._server import Unmasked, unmask

__all__ = [
    "MIN_LEVELS",
    "Advertisement",
    "BadMessage",
    "ClientKeys",
    "NotEnoughShares",
    "Reveal",
    "RoundContext",
    "SecAggError",
    "SecAggParams",
    "Unmasked",
    "advertise",
    "dequantize_mean",
    "masked_input",
    "open_share",
    "quantize",
    "reveal",
    "share_keys",
    "unmask",
]

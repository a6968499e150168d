"""Many clusters' ManifestWorks from one render: the shipped work template stamped per cluster.

At 10,000 clusters, Jinja rendering the work template once per cluster was the largest part
of ``render`` (about 1.5 s of 5.9 s on this machine), although the works differ only in the
cluster's name and its place in the roster. The shipped template treats both as opaque
text, so the work is rendered once with sentinel values and each cluster's work is that
text with the sentinels replaced.

That is exact only where a name needs no quoting anywhere it lands: a plain YAML scalar
and a JSON string without escapes, which every DNS-label name is unless YAML would read it
as a number, a boolean or null (``123``, ``on``, ``1e3``). Such names, and a user's own
work template, are rendered in full. Before the stamp is used it must give, for the
roster's first and last plain clusters, exactly what a full render gives; otherwise every
work is rendered in full.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

from fl_gitops.render._yaml import yaml_inline

__all__ = ["stamped_works"]

# Sentinels no blueprint or template writes; plain in YAML and in JSON.
_CLUSTER = "fl-gitops-stamp-cluster-7d1e0c"
_INDEX = 918273645
# Below this many clusters, rendering each in full costs nothing worth a stamp.
_MIN_ROSTER = 8
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _plain(name: str) -> bool:
    """Whether ``name`` lands in YAML and JSON as itself, unquoted and unescaped."""
    return (
        _DNS_LABEL.fullmatch(name) is not None
        and str(yaml_inline(name)) == name
        and json.dumps(name) == f'"{name}"'
    )


def stamped_works(
    render_one: Callable[[str, int], str], roster: Sequence[str], *, shipped: bool
) -> list[str]:
    """Each roster cluster's work text, in roster order, as ``render_one(cluster, index)``
    gives it.

    Args:
        render_one: renders the work of one cluster at its roster index.
        roster: the clusters, in the order their indices count.
        shipped: the work template is fl-gitops's own (a user's may use the name as more
            than text), the only case stamped.
    """

    def full(i: int) -> str:
        return render_one(roster[i], i)

    every = range(len(roster))
    if not shipped or len(roster) < _MIN_ROSTER:
        return [full(i) for i in every]
    stamp = render_one(_CLUSTER, _INDEX)
    index = str(_INDEX)
    if stamp.count(index) != 1 or _CLUSTER not in stamp:
        return [full(i) for i in every]

    def fill(i: int) -> str:
        return stamp.replace(_CLUSTER, roster[i]).replace(index, str(i))

    plain = [i for i, c in enumerate(roster) if _plain(c)]
    checked = {i: full(i) for i in {plain[0], plain[-1]}} if plain else {}
    if any(fill(i) != text for i, text in checked.items()):
        return [full(i) for i in every]
    plain_set = set(plain)
    return [checked[i] if i in checked else fill(i) if i in plain_set else full(i) for i in every]

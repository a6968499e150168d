"""`fl-gitops verify`: an experiment audited from its history and its store alone.

Anyone holding the config repo and the model store can check, after the fact, that every
round happened as committed: each round commit signed by an allowed signer, its trailers,
round record and round state telling the same story round after round, every model named
in Git in the store with those bytes, every contributor's update hashing to the digest its
cluster reported through the hub, and (``reaggregate``) every round's model recomputed bit
for bit. The modules, each with one job:

- ``_walk``: the commits walked oldest first, claims compared (Git only);
- ``_contents``: models and updates in the store against the digests Git names;
- ``_reaggregate``: each round redone with the aggregation engine;
- ``_report``: what was found, as lines or as JSON;
- ``_verify``: the steps in order.

Git is read through ``fl_gitops.gitops.HistoryReader`` (passed in: no git runs here), the
store through ``fl_gitops.store``. Nothing read from Git or the store reaches the report
but values checked against their pattern (``_values``).
"""

from __future__ import annotations

from fl_gitops.audit._report import Entry, Problem, Report, report_json, report_lines
from fl_gitops.audit._verify import verify_experiment
from fl_gitops.audit._walk import Aggregation, History

__all__ = [
    "Aggregation",
    "Entry",
    "History",
    "Problem",
    "Report",
    "report_json",
    "report_lines",
    "verify_experiment",
]

"""What trains and what aggregates: the model store, update checks, strategies, aggregation.

Nothing imported here needs torch: rendering and the reconcile job import this package on
machines without it. The client side (``client``, ``models``, ``train``) imports torch in
its own modules. Import the submodules directly (``fl_gitops.fl.store``,
``fl_gitops.fl.aggregate``); this file re-exports nothing so that importing one piece never
drags in the others.
"""

__all__: list[str] = []

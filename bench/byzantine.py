"""Robust strategies against Byzantine clusters on digits, and the protocol's baselines.

Runs real rounds with the library's own pieces, in one process: ``run_client`` trains each
cluster (the Byzantine ones tamper with their trained update before sending it), the
``file://`` store holds models and updates, ``aggregate_from_store`` aggregates with the
strategy, and the new global model is evaluated on the held-out 25% of digits.

Scenarios, all on the same data (an IID split of digits' training part over 13 clusters,
clusters 0-9 honest and 10-12 Byzantine):

- the attack-free reference: FedAvg over the 10 honest clusters only;
- under each attack (``scale`` ×-10: base − 10·Δ; ``signflip``: base − Δ), FedAvg, Krum
  (f=3), MultiKrum (f=3, m = n − f) and the coordinate-wise median over all 13.

Krum keeps one update per round. On IID digits it picks the same honest cluster every round
(the most central one), so the global model becomes that cluster's local model and levels off
at what ~100 examples can teach (about 87%): it resists the attack but does not match FedAvg.
MultiKrum, which averages the n − f most central updates, does.

Also the protocol's baselines: centralized training of the same mlp on the whole training
part, and FedAvg over 10 IID clusters with 5 local epochs, round by round.

    python bench/byzantine.py [--rounds 5] [--fedavg-rounds 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fl_gitops.aggregate import aggregate_from_store
from fl_gitops.client import byzantine_update, run_client
from fl_gitops.client.data import server_test_set
from fl_gitops.client.roundconfig import OptimizerConfig, TrainConfig
from fl_gitops.client.train import evaluate_bytes, train_centralized
from fl_gitops.models import initial_model_bytes
from fl_gitops.store import ModelStore

MODEL: dict[str, Any] = {"builtin": "mlp", "args": {"hidden": 32}, "seed": 0}
TRAIN: dict[str, Any] = {
    "epochs": 5,
    "batchSize": 16,
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "seed": 0,
}
ATTACKS: dict[str, tuple[str, float]] = {
    "scale-x-10": ("scale", -10.0),
    "signflip": ("signflip", 1.0),
}
ROBUST: dict[str, dict[str, Any]] = {
    "fedavg": {},
    "krum": {"f": 3},
    "multikrum": {"f": 3},
    "fedmedian": {},
}


def run_federated(
    workdir: Path,
    *,
    roster_size: int,
    participants: list[int],
    byzantine: set[int],
    attack: tuple[str, float] | None,
    strategy: str,
    options: dict[str, Any],
    rounds: int,
    partition: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Federated rounds through the real client, store and aggregator; one row per round."""
    data = {"builtin": "digits", "args": {}, "partition": partition or {"kind": "iid", "seed": 0}}
    store = ModelStore.open(f"file://{workdir}")
    digest = store.put_model(initial_model_bytes(MODEL, data))
    X_test, y_test = server_test_set(data)
    names = {i: f"cluster-{i:03d}" for i in participants}
    rows = []
    for r in range(1, rounds + 1):
        start = time.perf_counter()
        for i in participants:
            tamper: Callable[..., dict[str, np.ndarray]] | None = None
            if i in byzantine and attack is not None:
                kind, factor = attack

                def tamper(update, base, kind=kind, factor=factor):  # type: ignore[no-untyped-def]
                    return byzantine_update(update, base, kind=kind, factor=factor)

            config = {
                "apiVersion": "fl-gitops.io/v1alpha1",
                "kind": "RoundConfig",
                "experiment": "bench-byzantine",
                "round": r,
                "cluster": names[i],
                "rosterIndex": i,
                "rosterSize": roster_size,
                "store": {"uri": store.uri},
                "globalModel": {"digest": digest},
                "model": MODEL,
                "data": data,
                "train": TRAIN,
                "strategy": {"name": strategy, "options": options},
            }
            run_client(config, environ={}, tamper=tamper)
        result = aggregate_from_store(
            store, r, digest, strategy=strategy, options=options, roster=list(names.values())
        )
        digest = store.put_model(result.model)
        if result.new_state is not None:
            store.put_state(strategy, r, result.new_state)
        test = evaluate_bytes(result.model, X_test, y_test, model_cfg=MODEL, data_cfg=data)
        rows.append(
            {
                "round": r,
                "accuracy": test["accuracy"],
                "loss": test["loss"],
                "contributors": len(result.contributors),
                "selected": result.contributors if len(result.contributors) <= 3 else [],
                "byzantine_selected": sorted(
                    c for c in result.contributors if int(c.split("-")[1]) in byzantine
                ),
                "seconds": time.perf_counter() - start,
            }
        )
    return rows


def byzantine_scenarios(rounds: int, *, attacks: list[str] | None = None) -> dict[str, Any]:
    """Final test accuracy of each strategy under each attack, and the attack-free one."""
    honest = list(range(10))
    bad = {10, 11, 12}
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="fl-byz-") as tmp:
        ref = run_federated(
            Path(tmp, "clean"),
            roster_size=13,
            participants=honest,
            byzantine=set(),
            attack=None,
            strategy="fedavg",
            options={},
            rounds=rounds,
        )
        out["clean_fedavg"] = ref
        for attack_name in attacks or list(ATTACKS):
            for strategy, options in ROBUST.items():
                out[f"{attack_name}/{strategy}"] = run_federated(
                    Path(tmp, f"{attack_name}-{strategy}"),
                    roster_size=13,
                    participants=[*honest, *sorted(bad)],
                    byzantine=bad,
                    attack=ATTACKS[attack_name],
                    strategy=strategy,
                    options=options,
                    rounds=rounds,
                )
    return out


def baselines(fedavg_rounds: int, centralized_epochs: int) -> dict[str, Any]:
    """Centralized mlp accuracy, and FedAvg over 10 IID clusters round by round."""
    opt = TRAIN["optimizer"]
    cfg = TrainConfig(
        epochs=centralized_epochs,
        batch_size=TRAIN["batchSize"],
        optimizer=OptimizerConfig(opt["name"], opt["lr"], momentum=opt["momentum"]),
    )
    start = time.perf_counter()
    central = train_centralized(MODEL, {"builtin": "digits"}, cfg, seed=0)
    central_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="fl-fedavg-") as tmp:
        fed = run_federated(
            Path(tmp),
            roster_size=10,
            participants=list(range(10)),
            byzantine=set(),
            attack=None,
            strategy="fedavg",
            options={},
            rounds=fedavg_rounds,
        )
    return {
        "centralized": {**central, "epochs": centralized_epochs, "seconds": central_s},
        "fedavg_iid": fed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds per Byzantine scenario")
    parser.add_argument("--fedavg-rounds", type=int, default=10)
    parser.add_argument("--centralized-epochs", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    base = baselines(args.fedavg_rounds, args.centralized_epochs)
    c = base["centralized"]
    print(
        f"centralized mlp (hidden 32, sgd lr 0.05 momentum 0.9, {c['epochs']} epochs): "
        f"test accuracy {c['accuracy']:.4f} ({c['seconds']:.1f} s)"
    )
    print("FedAvg, 10 IID clusters, 5 local epochs:")
    for row in base["fedavg_iid"]:
        print(f"  round {row['round']:2d}: accuracy {row['accuracy']:.4f} loss {row['loss']:.4f}")
    byz = byzantine_scenarios(args.rounds)
    clean = byz["clean_fedavg"][-1]["accuracy"]
    print(f"\nByzantine: 10 honest + 3 attackers, {args.rounds} rounds, final test accuracy")
    print(f"  attack-free FedAvg (10 honest): {clean:.4f}")
    for name, rows in byz.items():
        if name == "clean_fedavg":
            continue
        acc = rows[-1]["accuracy"]
        picked = sorted({c for row in rows for c in row["byzantine_selected"]})
        chosen = sorted({c for row in rows for c in row["selected"]})
        note = f", attackers aggregated: {', '.join(picked)}" if picked else ""
        if name.endswith("/krum"):
            note += f", selected over the rounds: {', '.join(chosen)}"
        print(f"  {name:22s} {acc:.4f} ({100 * (acc - clean):+.1f} points){note}")
    print(f"\ntotal {time.perf_counter() - start:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"baselines": base, "byzantine": byz}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Try the attacks of issue 10 against real simulated runs, and count what was refused.

    python bench/attacks.py                 # about a minute on 2 cores
    python bench/attacks.py --keep /tmp/atk # keep the work dirs

Not a speed benchmark: it measures defences. Each row is one kind of attack, tried the
way a party with that access would, against the shipped code paths:

- through the loop (``fl-gitops simulate``, then ``fl-gitops verify --reaggregate``
  against the run's own ``allowed_signers``): a party with write access to the bucket
  replacing updates and rewriting their metadata (``--tamper-store``); a cluster sending
  its update scaled by 1e30, or sign-flipped and scaled by 10 (``--byzantine``);
- in the store, one cluster's files made hostile after a clean round (a link to another
  cluster's update, a dangling link, a FIFO, a directory, a missing file, metadata over
  its size bound, nested too deep or not UTF-8, a truncated update, a header declaring
  a huge length) and a cluster reporting 2^53 examples, each aggregated with
  ``aggregate_from_store`` as the reconcile pass calls it: the victim must be refused,
  the round must equal the round without it, and no planted byte may reach the record;
- after the fact: a model or an update changed in the store, a round commit re-signed
  by a key that is not allowed, each of which ``fl-gitops verify`` must find (exit 1).

Prints one row per attack (tried, refused or found) and the rounds verified.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINT = ROOT / "blueprints" / "digits-fedavg.yaml"
EXPERIMENT = "experiments/digits-fedavg"
MARKER = "ATTACKER-PLANTED-BYTES"
FL = [sys.executable, "-m", "fl_gitops.cli"]


def _blueprint(work: Path) -> Path:
    """The stock blueprint with a quorum that lets a round go on without a refused few."""
    text = BLUEPRINT.read_text().replace("minClusters: 8 ", "minClusters: 3 ")
    path = work / "blueprint.yaml"
    path.write_text(text)
    return path


def _simulate(work: Path, name: str, *flags: str) -> tuple[Path, dict[str, Any]]:
    workdir = work / name
    cmd = [*FL, "simulate", str(_blueprint(work)), "--clusters", "6", "--rounds", "3"]
    cmd += ["--workdir", str(workdir), "--no-plot", "--jobs", "2", *flags]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"simulate {name} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return workdir, json.loads((workdir / "report.json").read_text())


def _verify(workdir: Path, *, signers: Path | None = None) -> tuple[int, dict[str, Any]]:
    cmd = [*FL, "verify", "--repo", str(workdir / "config-repo.git"), "--path", EXPERIMENT]
    cmd += ["--workdir", str(workdir / "verify-clone"), "--reaggregate", "-o", "json"]
    cmd += ["--allowed-signers", str(signers or workdir / "allowed_signers")]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    try:
        return done.returncode, json.loads(done.stdout)
    except ValueError:
        raise SystemExit(
            f"verify gave no JSON ({done.returncode}):\n{done.stderr[-2000:]}"
        ) from None


def _rounds_ok(report: dict[str, Any]) -> int:
    """Aggregated rounds that verify, signatures and re-aggregation included."""
    return sum(1 for e in report["entries"] if e["kind"] == "round" and e["ok"])


# ------------------------------------------------------------------ through the loop


def loop_attacks(work: Path, rows: list[tuple[str, int, int, str]]) -> int:
    """The attacks that go through simulate; returns the rounds verified."""
    verified = 0
    cases = [
        ("bucket writer replaces 2 updates a round", "tamper", ["--tamper-store", "2"]),
        (
            "cluster sends its update x1e30",
            "scale",
            ["--byzantine", "1", "--byzantine-kind", "scale", "--byzantine-factor", "1e30"],
        ),
        (
            "cluster sends its update sign-flipped x10",
            "signflip",
            ["--byzantine", "1", "--byzantine-kind", "signflip", "--byzantine-factor", "10"],
        ),
    ]
    for title, name, flags in cases:
        workdir, report = _simulate(work, name, *flags)
        if name == "tamper":
            tried = len(report.get("tampered", []))
            refused = sum(
                1
                for t in report["tampered"]
                if "hashes to sha256:" in str(t.get("rejected")) and "hub reported" in str(t)
            )
        else:
            tried = len(report["rounds"])  # one attacker each round
            refused = sum(1 for r in report["rounds"] if r.get("rejected", 0) >= 1)
        code, audit = _verify(workdir)
        ok = _rounds_ok(audit)
        verified += ok if code == 0 else 0
        rows.append((title, tried, refused, f"phase {report['phase']}; verify exit {code}"))
    return verified


# ------------------------------------------------------------------ in the store


def _hostile(victim: str, other: str) -> dict[str, Callable[[Path], None]]:
    def link_other(d: Path) -> None:
        (d / f"{victim}.safetensors").unlink()
        os.symlink(d / f"{other}.safetensors", d / f"{victim}.safetensors")

    def dangling(d: Path) -> None:
        (d / f"{victim}.safetensors").unlink()
        os.symlink(d / "nowhere", d / f"{victim}.safetensors")

    def fifo(d: Path) -> None:
        (d / f"{victim}.safetensors").unlink()
        os.mkfifo(d / f"{victim}.safetensors")

    def directory(d: Path) -> None:
        (d / f"{victim}.safetensors").unlink()
        (d / f"{victim}.safetensors").mkdir()

    def missing(d: Path) -> None:
        (d / f"{victim}.safetensors").unlink()

    def big_meta(d: Path) -> None:
        meta = json.loads((d / f"{victim}.json").read_text())
        meta["pad"] = MARKER * 6000
        (d / f"{victim}.json").write_text(json.dumps(meta))

    def deep_meta(d: Path) -> None:
        meta = json.loads((d / f"{victim}.json").read_text())
        meta["metrics"] = json.loads("[" * 60 + json.dumps(MARKER) + "]" * 60)
        (d / f"{victim}.json").write_text(json.dumps(meta))

    def not_utf8(d: Path) -> None:
        (d / f"{victim}.json").write_bytes(b'{"x": "\xff\xfe' + MARKER.encode() + b'"}')

    def truncated(d: Path) -> None:
        path = d / f"{victim}.safetensors"
        path.write_bytes(path.read_bytes()[:100])

    def huge_header(d: Path) -> None:
        path = d / f"{victim}.safetensors"
        data = path.read_bytes()
        path.write_bytes((2**62).to_bytes(8, "little") + MARKER.encode() + data[8:])

    return {
        "update is a link to another cluster's": link_other,
        "update is a dangling link": dangling,
        "update is a FIFO": fifo,
        "update is a directory": directory,
        "update file missing": missing,
        "metadata over 64 KiB": big_meta,
        "metadata nested 60 deep": deep_meta,
        "metadata not UTF-8": not_utf8,
        "update truncated": truncated,
        "header declares 2^62 bytes": huge_header,
    }


def store_attacks(work: Path, rows: list[tuple[str, int, int, str]]) -> None:
    from fl_gitops.aggregate import aggregate_from_store
    from fl_gitops.reports import HubReport
    from fl_gitops.store import ModelStore

    clean, _ = _simulate(work, "clean")
    updates = clean / "store" / "rounds" / "1" / "updates"
    metas = {p.stem: json.loads(p.read_text()) for p in sorted(updates.glob("*.json"))}
    clusters = sorted(metas)
    victim, other = clusters[0], clusters[1]
    base = metas[victim]["base_model"]
    honest = {
        c: HubReport(m["sha256"], int(m["num_examples"]), {}) for c, m in sorted(metas.items())
    }

    def run(plant: Callable[[Path], None] | None, reported: dict[str, HubReport]) -> Any:
        copy = work / "store-copy"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(clean / "store", copy, symlinks=True)
        if plant is not None:
            plant(copy / "rounds" / "1" / "updates")
        store = ModelStore.open(str(copy))
        return aggregate_from_store(
            store, 1, base, strategy="fedavg", reported=reported, clusters=clusters
        )

    without = {c: r for c, r in honest.items() if c != victim}
    expected = run(lambda d: missing_pair(d, victim), without).digest
    attacks: dict[str, tuple[Callable[[Path], None] | None, dict[str, HubReport]]] = {
        title: (plant, honest) for title, plant in _hostile(victim, other).items()
    }
    claim = dict(honest)
    claim[victim] = HubReport(honest[victim].digest, 2**53 - 1, {})
    attacks["cluster reports 2^53 examples"] = (None, claim)
    for title, (plant, reported) in attacks.items():
        result = run(plant, reported)
        ok = victim in result.rejected and victim not in result.contributors
        same = result.digest == expected
        leaked = MARKER in json.dumps(result.record, default=str)
        note = "the round = the round without it" if same else "the round DIFFERS"
        rows.append((f"store: {title}", 1, int(ok and same and not leaked), note))


def missing_pair(d: Path, victim: str) -> None:
    (d / f"{victim}.safetensors").unlink()
    (d / f"{victim}.json").unlink()


# ------------------------------------------------------------------ after the fact


def after_the_fact(work: Path, rows: list[tuple[str, int, int, str]]) -> int:
    workdir, _ = _simulate(work, "audited")
    code, audit = _verify(workdir)
    clean_rounds = _rounds_ok(audit) if code == 0 else 0
    store = workdir / "store"

    def found(change: Callable[[], Callable[[], None]], title: str) -> None:
        undo = change()
        code, _ = _verify(workdir)
        undo()
        rows.append((f"after: {title}", 1, int(code == 1), f"verify exit {code}"))

    def change_model() -> Callable[[], None]:
        model = sorted((store / "models").glob("*.safetensors"))[-1]
        data = model.read_bytes()
        model.write_bytes(data[:-4] + b"\0\0\0\1")
        return lambda: model.write_bytes(data)

    def change_update() -> Callable[[], None]:
        update = sorted((store / "rounds" / "2" / "updates").glob("*.safetensors"))[0]
        data = update.read_bytes()
        update.write_bytes(data[:-4] + b"\0\0\0\1")
        return lambda: update.write_bytes(data)

    found(change_model, "a model changed in the store")
    found(change_update, "an update changed after its round")
    other_key = work / "other-key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True
    )
    signers = work / "other_signers"
    signers.write_text(f'x@y namespaces="git" {other_key.with_suffix(".pub").read_text()}')
    code, _ = _verify(workdir, signers=signers)
    rows.append(("after: rounds signed by a key not allowed", 1, int(code == 1), f"exit {code}"))
    return clean_rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="keep the work dirs here")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="fl-attacks-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, int, int, str]] = []
    try:
        verified = loop_attacks(work, rows)
        store_attacks(work, rows)
        verified += after_the_fact(work, rows)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    print(f"{'attack':<{width}}  tried  refused/found  note")
    for title, tried, refused, note in rows:
        print(f"{title:<{width}}  {tried:>5}  {refused:>13}  {note}")
    tried = sum(r[1] for r in rows)
    refused = sum(r[2] for r in rows)
    print(f"\n{tried} attacks tried, {refused} refused or found; {verified} rounds verified")
    return 0 if tried == refused else 1


if __name__ == "__main__":
    sys.exit(main())

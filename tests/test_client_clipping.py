"""Client-side adaptive clipping (``spec.strategy.dp.clipping: client``) end to end in
`fl-gitops simulate`: real torch training on digits, each cluster's Job clipping its own
update to the clip its round config carries and reporting one bit through the hub; the
hub moving the clip from the noised count of those bits, refusing an update farther than
the clip (a cluster that did not clip), recording clip and noise multiplier, and
`verify --reaggregate` redoing every round from Git and the store. Also the validate error
for a combination that cannot work, located, exit 2."""

from __future__ import annotations

import itertools
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fl_gitops.aggregate.strategies.dp import client_clip_bound
from fl_gitops.cli import main
from fl_gitops.client.clip import update_norm
from fl_gitops.store import ModelStore
from fl_gitops.tensors import load_bytes

REPO = Path(__file__).resolve().parents[1]
STOCK = REPO / "blueprints" / "digits-fedavg.yaml"
PATH = "experiments/digits-client-dp"
ROUNDS = 3
DP = (
    "    dp: {clipNorm: 0.5, noiseMultiplier: 0.5, seed: 5, clipping: client,\n"
    "         adaptive: {targetQuantile: 0.5, learningRate: 0.5, clippedCountStddev: 1.0}}\n"
)


def _blueprint(tmp: Path, *, shards: int = 1) -> Path:
    text = STOCK.read_text()
    text = text.replace("name: digits-fedavg ", "name: digits-client-dp ")
    text = text.replace("path: experiments/digits-fedavg", f"path: {PATH}")
    text = text.replace("epochs: 5", "epochs: 1")
    text = text.replace("minClusters: 8", "minClusters: 3")
    text = text.replace("    options: {}\n", "    options: {}\n" + DP)
    if shards > 1:
        text = text.replace("  client:\n", f"  aggregation: {{shards: {shards}}}\n  client:\n", 1)
    path = tmp / "digits-client-dp.yaml"
    path.write_text(text)
    return path


def _show(git_dir: Path, rel: str, commit: str = "main") -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{commit}:{PATH}/{rel}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _records(work: Path) -> list[dict]:
    git_dir = work / "config-repo.git"
    return [
        yaml.safe_load(_show(git_dir, f".history/round-{n}.yaml")) for n in range(1, ROUNDS + 1)
    ]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Four clusters, three rounds; the last cluster of the roster sends its honest step
    ten times over every round (it does not clip), reporting its bit as an honest one."""
    tmp = tmp_path_factory.mktemp("client-dp")
    work = tmp / "sim"
    args = ["simulate", str(_blueprint(tmp)), "--clusters", "4", "--rounds", str(ROUNDS)]
    args += ["--byzantine", "1", "--byzantine-kind", "scale", "--byzantine-factor", "10"]
    assert main([*args, "--workdir", str(work), "--no-plot"]) == 0
    return tmp, work, json.loads((work / "report.json").read_text())


def test_the_clip_moves_round_to_round_and_each_record_says_so(run):
    _, work, report = run
    assert report["phase"] == "Completed"
    records = _records(work)
    dps = [r["dp"] for r in records]
    assert dps[0]["clipNorm"] == 0.5  # the blueprint's clipNorm starts it
    for before, after in itertools.pairwise(dps):
        assert after["clipNorm"] == before["nextClipNorm"]
    clips = [dp["clipNorm"] for dp in dps] + [dps[-1]["nextClipNorm"]]
    assert len(set(clips)) == len(clips)  # it moved every round
    for dp in dps:
        assert dp["clipping"] == "client"
        # Only the noisy fraction is published, never the true one nor who was clipped.
        assert not {"reportedUnclipped", "unclippedFraction", "clipped"} & set(dp)
        assert dp["noiseMultiplier"] == 0.5
        # The sum's multiplier after the count's share: (z^-2 - (2 sigma_b)^-2)^(-1/2).
        assert dp["sumNoiseMultiplier"] == pytest.approx((0.5**-2 - 0.25) ** -0.5)
        # The next clip is the geometric step of the paper from the noisy fraction.
        step = math.exp(-0.5 * (dp["noisyUnclippedFraction"] - 0.5))
        assert dp["nextClipNorm"] == pytest.approx(dp["clipNorm"] * step)


def _round_config(git_dir: Path, commit: str, cluster: str) -> dict:
    """The round config a cluster's Job reads, from its ManifestWork as of ``commit``."""
    work = _work(git_dir, commit, cluster)
    (config,) = (
        m["data"]["round.json"]
        for m in work["spec"]["workload"]["manifests"]
        if m["kind"] == "ConfigMap" and "round.json" in m.get("data", {})
    )
    return json.loads(config)


def _work(git_dir: Path, commit: str, cluster: str) -> dict:
    """A cluster's ManifestWork as of ``commit``."""
    return yaml.safe_load(_show(git_dir, f"works/{cluster}.yaml", commit))


def _round_config(work: dict) -> dict:
    """The round config a cluster's Job reads, from its ManifestWork."""
    (config,) = (
        m["data"]["round.json"]
        for m in work["spec"]["workload"]["manifests"]
        if m["kind"] == "ConfigMap" and "round.json" in m.get("data", {})
    )
    return json.loads(config)


def test_each_round_config_carries_the_clip_its_record_checks_against(run):
    _, work, _ = run
    git_dir = work / "config-repo.git"
    log = subprocess.run(
        ["git", "--git-dir", str(git_dir), "log", "--format=%H %s", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    # The commit that rendered round n's works: round 1's roster, or "round n-1 -> n".
    started = {}
    for commit, _, subject in (line.partition(" ") for line in log):
        if subject.endswith(": round 1 roster"):
            started[1] = commit
        elif (after := subject.rpartition(" -> ")[2]).isdigit():
            started[int(after)] = commit
    assert sorted(started) == list(range(1, ROUNDS + 1))
    for n, record in enumerate(_records(work), start=1):
        for cluster in record["roster"]:
            manifest = _work(git_dir, started[n], cluster)
            config = _round_config(manifest)
            assert config["round"] == n
            assert config["dp"] == {"clipping": "client", "clipNorm": record["dp"]["clipNorm"]}
            # The work reads the bit back through its result ConfigMap's feedback.
            rules = [
                rule
                for entry in manifest["spec"]["manifestConfigs"]
                for rule in entry.get("feedbackRules", [])
            ]
            paths = [p for rule in rules for p in rule.get("jsonPaths", [])]
            assert {"name": "unclipped", "path": ".data.unclipped"} in paths


def test_every_honest_update_in_the_store_is_within_its_rounds_clip(run):
    _, work, _ = run
    store = ModelStore.open(str(work / "store"))
    for n, record in enumerate(_records(work), start=1):
        clip = record["dp"]["clipNorm"]
        base = load_bytes(store.get_model(record["baseModel"]))
        contributors = record["contributors"]
        assert len(contributors) == 3
        norms = {}
        for cluster in contributors:
            update = load_bytes(store.get_update(n, cluster))
            norms[cluster] = update_norm(update, base)
            assert norms[cluster] <= client_clip_bound(clip)
        # The bits stay beside the updates in the store, for verify; not in Git.
        kept = store.get_round_record(n)
        assert (kept["round"], kept["attempt"], kept["model"]) == (n, 1, record["model"])
        bits = kept["reportedUnclipped"]
        assert set(bits) == set(contributors)
        for cluster, within in bits.items():
            # A clipped update was brought to the clip; an unclipped one was left below it.
            if within:
                assert norms[cluster] <= clip
            else:
                assert norms[cluster] == pytest.approx(clip, rel=1e-5)


def test_an_update_farther_than_the_clip_is_refused_as_not_clipped(run):
    _, work, _ = run
    for record in _records(work):
        rejected = record["rejected"]
        assert len(rejected) == 1
        (reason,) = rejected.values()
        assert "the round's clip (dp.clipping: client)" in reason
        assert next(iter(rejected)) not in record["contributors"]


def test_verify_reaggregates_every_client_clipped_round(run, capsys):
    tmp, work, _ = run
    capsys.readouterr()
    args = ["verify", "--repo", str(work / "config-repo.git"), "--path", PATH]
    args += ["--store", str(work / "store"), "--workdir", str(tmp / "v"), "--reaggregate"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"verified {ROUNDS} rounds of digits-client-dp: all checks hold" in out


def test_verify_finds_a_changed_clip_bit_in_the_store(run, tmp_path, capsys):
    """The next clip is made again from the bits the store keeps: flip one (in a copy of
    the store) and the re-made round's next clip is not the committed one."""
    _, work, _ = run
    copy = tmp_path / "store"
    shutil.copytree(work / "store", copy)
    kept = ModelStore.open(str(copy))
    record = kept.get_round_record(1)
    first = sorted(record["reportedUnclipped"])[0]
    record["reportedUnclipped"][first] = not record["reportedUnclipped"][first]
    kept.put_round_record(1, record)
    capsys.readouterr()
    args = ["verify", "--repo", str(work / "config-repo.git"), "--path", PATH]
    args += ["--store", str(copy), "--workdir", str(tmp_path / "v"), "--reaggregate"]
    assert main(args) != 0
    out = capsys.readouterr().out
    chosen = _records(work)[0]["dp"]["nextClipNorm"]
    assert f"the record's nextClipNorm is {chosen}, re-aggregation chose " in out


def test_verify_names_an_unclipped_update_a_forged_record_took(run, tmp_path, capsys):
    """The last round's commit rewritten (in a clone) so that its record counts the refused
    cluster among the contributors: re-aggregation bounds every contributor by the round's
    clip again, and names it."""
    _, work, _ = run
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(work / "config-repo.git"), str(clone)], check=True)
    path = clone / PATH / ".history" / f"round-{ROUNDS}.yaml"
    doc = yaml.safe_load(path.read_text())
    (cheat,) = doc["rejected"]
    doc["rejected"] = {}
    doc["contributors"] = sorted([*doc["contributors"], cheat])
    doc["weights"] = {c: 0.25 for c in doc["contributors"]}
    doc["numExamples"][cheat] = 100
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    git = ["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "commit", "-qa", "--amend", "--no-edit"], check=True)
    capsys.readouterr()
    args = ["verify", "--repo", str(clone), "--path", PATH]
    args += ["--store", str(work / "store"), "--workdir", str(tmp_path / "v"), "--reaggregate"]
    assert main(args) != 0
    out = capsys.readouterr().out
    bound = client_clip_bound(doc["dp"]["clipNorm"])
    assert "rejected on re-aggregation: L2 distance to the global model is" in out
    assert f"over the bound of {bound:.6g}" in out
    assert cheat in out


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fl_gitops.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_validate_refuses_client_clipping_with_sharded_aggregation_located(tmp_path):
    path = _blueprint(tmp_path, shards=2)
    line = next(
        n for n, text in enumerate(path.read_text().splitlines(), start=1) if "clipping:" in text
    )
    out = _validate(path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert f"{path}:{line}:" in out.stderr
    assert "spec.strategy.dp.clipping: client-side clipping is not built for sharded " in (
        out.stderr
    )
    assert "aggregation.shards is 2" in out.stderr


def test_validate_refuses_an_unknown_clipping_place_located(tmp_path):
    path = _blueprint(tmp_path)
    path.write_text(path.read_text().replace("clipping: client", "clipping: cluster"))
    out = _validate(path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "spec.strategy.dp.clipping" in out.stderr
    assert "server" in out.stderr and "client" in out.stderr

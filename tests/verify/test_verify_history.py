"""`fl-gitops verify` over a real simulated run: what holds, and each kind of problem found.

Every test audits its own copy of one `simulate --clusters 3 --rounds 2` run (a bare config
repo and a file store), re-signed with a test key, and changed the way a party with write
access to the repo or the bucket would change it.
"""

from __future__ import annotations

import json
import shutil

import yaml

from tests.verify.conftest import PATH, git


def _sha7(world, ref: str = "HEAD") -> str:
    return git(world.clone, "rev-parse", "--short=7", ref).strip()


def _record(world, round_: int, ref: str = "HEAD") -> dict:
    return yaml.safe_load(world.show(f".history/round-{round_}.yaml", ref))


def _problems(run) -> list[str]:
    return [line.strip() for line in run.lines if line.startswith("  problem  ")]


def test_a_signed_simulated_run_verifies_with_a_line_per_round(world, verify, bot_key):
    world.sign(bot_key)
    run = verify("--allowed-signers", str(bot_key.allowed_signers), "--reaggregate")
    assert run.code == 0, run.out
    round1, round2 = _record(world, 1, "HEAD~1"), _record(world, 2)
    assert (
        f"round 1  {_sha7(world, 'HEAD~1')}  OK  aggregated: model {round1['model']}, "
        "3 contributors"
    ) in run.lines
    assert (
        f"round 2  {_sha7(world)}  OK  aggregated: model {round2['model']}, 3 contributors"
    ) in run.lines
    assert run.lines[0].endswith(
        f"signatures checked against {bot_key.allowed_signers}; every round re-aggregated"
    )
    assert run.lines[-1] == "verified 2 rounds of digits-fedavg: all checks hold"
    assert _problems(run) == []


def test_without_allowed_signers_the_report_says_signatures_were_not_checked(world, verify):
    run = verify()
    assert run.lines[0].endswith("signatures NOT checked (no --allowed-signers given)")
    assert run.lines[-1].endswith("(signatures not checked)")


def test_an_unsigned_round_commit_is_a_problem(world, verify, bot_key):
    world.sign(bot_key)
    world.amend_tip(key=None)
    run = verify("--allowed-signers", str(bot_key.allowed_signers))
    assert run.code == 1
    assert _problems(run) == [f"problem  round 2  {_sha7(world)}  -  round commit is not signed"]


def test_a_round_commit_signed_by_a_key_not_allowed_names_the_key(
    world, verify, bot_key, other_key
):
    world.sign(bot_key)
    world.amend_tip(key=other_key)
    run = verify("--allowed-signers", str(bot_key.allowed_signers))
    assert run.code == 1
    assert _problems(run) == [
        f"problem  round 2  {_sha7(world)}  -  signed by key {other_key.fingerprint}, "
        "which is not an allowed signer"
    ]


def test_a_model_missing_from_the_store_is_named(world, verify, bot_key):
    world.sign(bot_key)
    model = _record(world, 1, "HEAD~1")["model"]
    (world.store / "models" / f"{model.replace(':', '-')}.safetensors").unlink()
    run = verify("--allowed-signers", str(bot_key.allowed_signers))
    assert run.code == 1
    assert _problems(run) == [
        f"problem  round 1  {_sha7(world, 'HEAD~1')}  -  model {model} is not in the store"
    ]


def test_a_model_whose_bytes_changed_in_the_store_is_named(world, verify, bot_key):
    world.sign(bot_key)
    model = _record(world, 2)["model"]
    path = world.store / "models" / f"{model.replace(':', '-')}.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    run = verify("--allowed-signers", str(bot_key.allowed_signers))
    assert run.code == 1
    assert _problems(run) == [
        f"problem  round 2  {_sha7(world)}  -  the store's model {model} does not hash to its name"
    ]


def test_an_update_replaced_in_the_store_after_the_round_names_both_digests(world, verify, bot_key):
    world.sign(bot_key)
    updates = world.store / "rounds" / "1" / "updates"
    # A party with bucket access swaps one cluster's update for another's, metadata and all.
    shutil.copyfile(updates / "cluster-002.safetensors", updates / "cluster-001.safetensors")
    record = _record(world, 1, "HEAD~1")
    reported = record["updates"]["cluster-001"]
    now = record["updates"]["cluster-002"]
    run = verify("--allowed-signers", str(bot_key.allowed_signers))
    assert run.code == 1
    assert _problems(run) == [
        f"problem  round 1  {_sha7(world, 'HEAD~1')}  cluster-001  the store's update hashes "
        f"to {now}, the hub reported {reported}"
    ]


def test_a_record_whose_model_disagrees_with_its_trailer_is_found(world, verify, bot_key):
    world.sign(bot_key)
    text = world.show(".history/round-2.yaml")
    base = _record(world, 2)["baseModel"]
    model = _record(world, 2)["model"]
    world.amend_tip(files={".history/round-2.yaml": text.replace(model, base)}, key=bot_key)
    run = verify("--allowed-signers", str(bot_key.allowed_signers))
    assert run.code == 1
    sha = _sha7(world)
    assert _problems(run) == [
        f"problem  round 2  {sha}  -  the record's model is {base}, the FL-Model trailer "
        f"names {model}",
        f"problem  round 2  {sha}  -  the record's model is {base}, hub/round-state.yaml "
        f"names {model}",
    ]


def test_a_round_whose_model_is_not_the_aggregate_of_its_updates_fails_reaggregation(
    world, verify, bot_key
):
    # The round's record, state and trailer all name round 1's model (which is in the
    # store, with its bytes): consistent, but not what round 2's updates aggregate to.
    world.sign(bot_key)
    record = _record(world, 2)
    real, fake = record["model"], record["baseModel"]
    message = git(world.clone, "log", "-1", "--format=%B").replace(real, fake)
    files = {
        rel: world.show(rel).replace(real, fake)
        for rel in (".history/round-2.yaml", "hub/round-state.yaml")
    }
    world.amend_tip(files=files, message=message, key=bot_key)
    assert verify("--allowed-signers", str(bot_key.allowed_signers)).code == 0
    run = verify("--allowed-signers", str(bot_key.allowed_signers), "--reaggregate")
    assert run.code == 1
    assert _problems(run) == [
        f"problem  round 2  {_sha7(world)}  -  re-aggregated model is {real}, "
        f"the round committed {fake}"
    ]


def test_a_person_editing_the_blueprint_is_shown_as_an_edit_not_a_problem(world, verify, bot_key):
    world.sign(bot_key)
    blueprint = world.clone / PATH / "blueprint.yaml"
    blueprint.write_text(blueprint.read_text() + "# reviewed\n")
    git(world.clone, "add", str(blueprint))
    person = ["-c", "user.name=Alice Doe", "-c", "user.email=alice@example.com"]
    git(world.clone, *person, "commit", "-q", "--no-gpg-sign", "-m", "blueprint: a note")
    world.push()
    run = verify("--allowed-signers", str(bot_key.allowed_signers))
    assert run.code == 0, run.out
    sha = _sha7(world)
    assert f"edit  {sha}  blueprint edited by Alice Doe <alice@example.com> in {sha}" in run.lines


def test_a_record_changed_by_a_commit_without_the_round_trailers_is_a_problem(
    world, verify, bot_key
):
    world.sign(bot_key)
    record = world.clone / PATH / ".history" / "round-1.yaml"
    record.write_text(record.read_text().replace("timedOut: false", "timedOut: true"))
    git(world.clone, "add", str(record))
    person = ["-c", "user.name=Mallory", "-c", "user.email=m@example.com"]
    git(world.clone, *person, "commit", "-q", "--no-gpg-sign", "-m", "tidy")
    world.push()
    run = verify("--allowed-signers", str(bot_key.allowed_signers))
    assert run.code == 1
    assert _problems(run) == [
        f"problem  -  {_sha7(world)}  -  the record of round 1 changed outside a round commit"
    ]


def test_json_output_is_one_document_with_the_same_rounds_and_problems(world, verify, bot_key):
    world.sign(bot_key)
    world.amend_tip(key=None)
    run = verify("--allowed-signers", str(bot_key.allowed_signers), "-o", "json")
    assert run.code == 1
    doc = json.loads(run.out)
    assert doc["experiment"] == "digits-fedavg" and doc["rounds"] == 2 and doc["ok"] is False
    assert doc["signatures"] == {
        "checked": True,
        "allowedSigners": str(bot_key.allowed_signers),
        "besideTheRepo": None,
    }
    rounds = [e for e in doc["entries"] if e["kind"] == "round"]
    assert [(e["round"], e["ok"]) for e in rounds] == [(1, True), (2, False)]
    assert doc["problems"] == [
        {"round": 2, "commit": world.head(), "cluster": None, "what": "round commit is not signed"}
    ]


def test_a_path_with_no_experiment_exits_2_naming_it(world, verify):
    run = verify(path="experiments/nothing-here")
    assert run.code == 2
    assert run.out == ""
    assert run.err == (
        "error: --path experiments/nothing-here: no commit in the repository touches it\n"
    )


def test_a_repo_that_cannot_be_read_exits_2_naming_it(tmp_path, capsys):
    from fl_gitops.cli import main

    missing = tmp_path / "no-such-repo.git"
    args = ["verify", "--repo", str(missing), "--path", PATH, "--workdir", str(tmp_path / "c")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err == f"error: --repo {missing}: no such directory; expected a git repo (path or URL)\n"


def test_an_allowed_signers_file_that_is_not_there_exits_2_naming_it(world, verify, tmp_path):
    missing = tmp_path / "allowed_signers"
    run = verify("--allowed-signers", str(missing))
    assert (run.code, run.out) == (2, "")
    assert run.err == f"error: --allowed-signers {missing}: expected an allowed_signers file\n"


def test_a_trailer_that_disagrees_with_the_round_state_is_found(world, verify, bot_key):
    world.sign(bot_key)
    message = git(world.clone, "log", "-1", "--format=%B").replace("FL-Round: 2", "FL-Round: 3")
    world.amend_tip(message=message, key=bot_key)
    run = verify("--allowed-signers", str(bot_key.allowed_signers))
    assert run.code == 1
    assert _problems(run) == [
        f"problem  round 2  {_sha7(world)}  -  the FL-Round trailer says round 3, "
        "hub/round-state.yaml round 2"
    ]


def test_nothing_from_a_hostile_record_or_author_reaches_the_report(world, verify, bot_key):
    world.sign(bot_key)
    hostile = "$(rm -rf ~) <b>EVIL</b>"
    text = world.show(".history/round-2.yaml")
    model = _record(world, 2)["model"]
    text = text.replace(f"model: {model}", f"model: '{hostile}'")
    text = text.replace("- cluster-003", f"- '{hostile}'", 1)
    world.amend_tip(files={".history/round-2.yaml": text}, key=bot_key)
    blueprint = world.clone / PATH / "blueprint.yaml"
    blueprint.write_text(blueprint.read_text() + "# edit\n")
    git(world.clone, "add", str(blueprint))
    who = ["-c", f"user.name=\x1b[2J{hostile}", "-c", "user.email=x@example.com"]
    git(world.clone, *who, "commit", "-q", "--no-gpg-sign", "-m", "edit")
    world.push()
    for output in ("text", "json"):
        run = verify("--allowed-signers", str(bot_key.allowed_signers), "-o", output)
        assert run.code == 1
        assert "EVIL" not in run.out and "\x1b" not in run.out
    run = verify("--allowed-signers", str(bot_key.allowed_signers))
    assert "  problem  round 2  " in run.out
    assert "model is missing or not a digest" in run.out
    assert "the record's roster holds a value that is not a cluster name" in run.out
    assert "blueprint edited by an author whose name is not shown in" in run.out

"""The render's memoized YAML filters write exactly what the plain filters write.

At fleet scale the environment writes each shared value once (`_memoized_block`,
`_memoized_inline`); a cached text returned for the wrong value would put one cluster's
name in another's work, so every byte is compared with a render through plain Jinja.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from fl_gitops.blueprint import load_blueprint
from fl_gitops.render import render_experiment
from fl_gitops.render._env import SHIPPED_TEMPLATES, _memoized_block, _memoized_inline
from fl_gitops.render._names import Names
from fl_gitops.render._offline import initial_round_state
from fl_gitops.render._render import (
    _client_env,
    _fill_round_config,
    _report_context,
    _round_config_base,
    _round_config_text,
    _shared_context,
)
from fl_gitops.render._yaml import YamlText, yaml_block, yaml_inline

REFERENCE = Path(__file__).resolve().parents[2] / "blueprints" / "digits-fedavg.yaml"


def _plain_works(blueprint, state, roster: list[str]) -> dict[str, str]:
    """Each cluster's ManifestWork through a plain Environment and the unmemoized filters."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(SHIPPED_TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["yaml"] = yaml_inline
    env.filters["yaml_block"] = yaml_block
    template = env.get_template("manifestwork.yaml.j2")
    names = Names(blueprint.name, blueprint.namespace, state.round, state.attempt)
    ctx = _shared_context(blueprint, names, state)
    text = _round_config_text(_round_config_base(blueprint, state), len(roster))
    return {
        cluster: template.render(
            ctx,
            cluster=YamlText(cluster),
            round_config=_fill_round_config(text, cluster, index),
            env=_client_env(blueprint, names, cluster),
            report=_report_context(blueprint, names),
        )
        for index, cluster in enumerate(roster)
    }


def test_every_work_of_a_fleet_is_byte_identical_to_a_plain_render() -> None:
    blueprint = load_blueprint(REFERENCE)
    state = initial_round_state(blueprint)
    roster = sorted([*(f"cluster-{i:03d}" for i in range(60)), "123", "on", "a.b"])
    tree = render_experiment(blueprint, roster=roster, state=state)
    expected = _plain_works(blueprint, state, roster)
    for cluster in roster:
        path = f"{blueprint.gitops.path}/{tree.layout.work(cluster)}"
        assert tree.files[path].decode() == expected[cluster], cluster


def test_a_mapping_written_as_a_list_item_and_as_a_value_gets_each_its_own_text() -> None:
    block = _memoized_block()
    entry = {"name": "A", "value": "b"}
    assert block([entry], 4) == yaml_block([entry], 4)
    assert block(entry, 4) == yaml_block(entry, 4)
    assert block([entry, {"name": "C"}], 4) == yaml_block([entry, {"name": "C"}], 4)


def test_scalars_equal_in_python_but_not_in_yaml_are_quoted_apart() -> None:
    inline = _memoized_inline()
    assert [inline(1), inline(True), inline(1.0), inline("1"), inline(None)] == [
        "1",
        "true",
        "1.0",
        '"1"',
        "null",
    ]

"""Values reach YAML only through the safe filters, and read back exactly as given."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.exceptions import SecurityError
from ruamel.yaml import YAML

from fl_gitops.cli import main
from fl_gitops.errors import TemplateError
from fl_gitops.render import make_env, yaml_document

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(
        [
            "yes",
            "no",
            "on",
            "off",
            "~",
            "null",
            "1e3",
            "0x1F",
            "012",
            "a: b",
            "- x",
            "#c",
            "x #y",
            "'q'",
            '"d"',
            "|",
            ">",
            "*a",
            "&a",
            "!tag",
            "%x",
            "@a",
            "`b",
            "--repo",
            "---",
            "...",
            "\n",
            " lead",
            "trail ",
            "a\n b",
            "a\n\n",
            "\u2028",
            "\x85",
            "\ufeff",
            "2026-11-28",
            "1:20",
            "=",
            "<<",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=12), values, max_size=6))
def test_any_value_reads_back_exactly_with_pyyaml_and_ruamel(document):
    text = yaml_document({"root": document})
    assert yaml.load(text, Loader=yaml.CSafeLoader) == {"root": document}
    assert YAML(typ="safe", pure=True).load(text) == {"root": document}


def test_a_value_cannot_inject_a_field():
    hostile = 'x"\ninjected: true\nlabels: {a: "b"}'
    text = yaml_document({"metadata": {"name": hostile}})
    assert yaml.safe_load(text) == {"metadata": {"name": hostile}}


def test_a_template_that_skips_the_yaml_filter_is_refused():
    env = make_env()
    template = env.from_string("name: {{ name }}\n")
    with pytest.raises(TemplateError, match="without a YAML filter"):
        template.render(name="x")


def test_a_user_template_cannot_reach_python_internals(tmp_path: Path):
    env = make_env(tmp_path)
    template = env.from_string("x: {{ ''.__class__.__mro__[1].__subclasses__() | yaml }}\n")
    with pytest.raises(SecurityError, match=r"attribute '__class__' of 'str' object is unsafe"):
        template.render()


def _write_user_template(directory: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "fl_gitops/render/templates"
    text = (shipped / "placement.yaml.j2").read_text()
    (directory / "placement.yaml.j2").write_text(
        text.replace("{{ namespace | yaml }}", "{{ namespace }}")
    )


def test_a_bad_user_template_exits_2_and_leaves_the_output_untouched(tmp_path: Path, capsys):
    from fl_gitops.blueprint import load_blueprint
    from fl_gitops.placement import generate_inventory, inventory_list

    repo = Path(__file__).resolve().parents[2]
    reference = repo / "blueprints/digits-fedavg.yaml"
    clusters = generate_inventory(20, spec=load_blueprint(reference).placement, seed=1)
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(yaml.safe_dump(inventory_list(clusters)))
    templates = tmp_path / "templates"
    templates.mkdir()
    _write_user_template(templates)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("untouched\n")
    argv = ["render", str(reference), "--inventory", str(inventory), "--out", str(out)]
    assert main([*argv, "--templates", str(templates)]) == 2
    err = capsys.readouterr().err
    assert "placement.yaml.j2" in err and "without a YAML filter" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in out.rglob("*")) == ["keep.txt"]

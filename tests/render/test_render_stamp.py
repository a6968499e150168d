"""The stamped ManifestWorks (render/_stamp.py) are exactly the works a full render gives."""

from __future__ import annotations

from fl_gitops.render._stamp import stamped_works


def _opaque(cluster: str, index: int) -> str:
    # As the shipped template uses them: the name and the index as text, quoted where YAML
    # would read them otherwise.
    shown = f"'{cluster}'" if cluster in ("123", "on", "1e3", "null") else cluster
    return f"namespace: {shown}\nenv: {shown}\nconfig: {{'cluster': \"{cluster}\", 'i': {index}}}\n"


def test_a_stamp_gives_every_cluster_its_full_render_quoted_names_included():
    roster = [f"cluster-{i:03d}" for i in range(20)] + ["123", "on", "1e3", "null"]
    calls: list[str] = []

    def render_one(cluster: str, index: int) -> str:
        calls.append(cluster)
        return _opaque(cluster, index)

    got = stamped_works(render_one, roster, shipped=True)
    assert got == [_opaque(c, i) for i, c in enumerate(roster)]
    # One stamp, two checks, the four names that need quoting: not one render per cluster.
    assert len(calls) == 1 + 2 + 4


def test_a_template_that_uses_the_name_as_more_than_text_is_rendered_in_full():
    roster = [f"c-{i}" for i in range(12)]

    def render_one(cluster: str, index: int) -> str:
        return f"name: {cluster}\nlength: {len(cluster)}\nindex: {index}\n"

    assert stamped_works(render_one, roster, shipped=True) == [
        render_one(c, i) for i, c in enumerate(roster)
    ]


def test_a_users_template_is_never_stamped():
    roster = [f"c-{i}" for i in range(12)]
    calls: list[str] = []

    def render_one(cluster: str, index: int) -> str:
        calls.append(cluster)
        return f"{cluster} {index}\n"

    stamped_works(render_one, roster, shipped=False)
    assert calls == roster

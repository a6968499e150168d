"""The one Jinja environment every template renders in.

Sandboxed and immutable (a user may point at a template directory of their own), StrictUndefined (a
misspelled variable fails instead of rendering empty), and with a `finalize` hook that
refuses any value not passed through the YAML-safe filters: a template cannot paste a raw
string into a manifest, so a label value cannot inject a field.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from fl_gitops.errors import TemplateError
from fl_gitops.render._yaml import YamlText, block_item, yaml_block, yaml_inline

__all__ = ["SHIPPED_TEMPLATES", "make_env"]

SHIPPED_TEMPLATES = Path(__file__).with_name("templates")


def _finalize(value: Any) -> Any:
    if isinstance(value, YamlText):
        return value
    raise TemplateError(
        f"a template inserted {type(value).__name__} {str(value)[:40]!r} without a YAML "
        "filter; write {{ value | yaml }} or key:{{ value | yaml_block(indent) }}"
    )


def _memoized_block() -> Any:
    """`yaml_block` that serializes each shared mapping, list or list item once per
    environment.

    A render passes the same label and resource mappings to every cluster's template,
    and env lists whose entries are shared but one; at 10,000 clusters, writing them
    once instead of 10,000 times is a third of the render. Safe because the environment
    is immutable-sandboxed: templates cannot change a value after it was cached, and the
    cache holds the value so its id stays unique.
    """
    # (id, indent, whole value or list item) -> (the value, kept alive; its text)
    cache: dict[tuple[int, int, bool], tuple[Any, str]] = {}

    def memo(value: Any, indent: int, write: Callable[[Any, int], str]) -> str:
        key = (id(value), indent, write is block_item)
        hit = cache.get(key)
        if hit is not None and hit[0] is value:
            return hit[1]
        text = write(value, indent)
        cache[key] = (value, text)
        return text

    def block(value: Any, indent: int = 2) -> YamlText:
        if isinstance(value, dict):
            return YamlText(memo(value, indent, yaml_block))
        if isinstance(value, list):
            if not value:
                return yaml_block(value, indent)
            # A list built per cluster (the client's env) mostly holds shared entries.
            hit = cache.get((id(value), indent, False))
            if hit is not None and hit[0] is value:
                return YamlText(hit[1])
            items = [
                memo(item, indent, block_item)
                if isinstance(item, dict | list)
                else block_item(item, indent)
                for item in value
            ]
            text = "\n" + "\n".join(items)
            cache[(id(value), indent, False)] = (value, text)
            return YamlText(text)
        return yaml_block(value, indent)

    return block


_SCALARS = (str, int, float, bool, type(None))


def _memoized_inline() -> Any:
    """`yaml` that quotes each distinct scalar once per environment.

    Every cluster's ManifestWork quotes the same thirty-odd names (the job, the
    namespace, the report's ConfigMap...) through `yaml`; at 10,000 clusters that was
    a fifth of the render. Scalars are keyed by type and value (``True == 1`` in a
    dict), collections by identity as in `_memoized_block`.
    """
    scalars: dict[tuple[type, Any], YamlText] = {}
    collections: dict[int, tuple[Any, YamlText]] = {}

    def inline(value: Any) -> YamlText:
        if isinstance(value, _SCALARS):
            key = (type(value), value)
            text = scalars.get(key)
            if text is None:
                text = scalars[key] = yaml_inline(value)
            return text
        hit = collections.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        text = yaml_inline(value)
        collections[id(value)] = (value, text)
        return text

    return inline


def make_env(template_dir: str | Path | None = None) -> ImmutableSandboxedEnvironment:
    """Build the sandboxed environment (compiled once per template directory and process).

    Args:
        template_dir: a directory of the user's templates; a file there replaces the
            shipped template of the same name, the others still come from the package.

    Raises:
        TemplateError: the directory does not exist.
    """
    if template_dir is not None and not Path(template_dir).is_dir():
        raise TemplateError(f"{Path(template_dir)}: template directory does not exist")
    env = _compiled_env(None if template_dir is None else str(Path(template_dir).resolve()))
    # A fresh memo per render: it only spans the clusters of one tree.
    env.filters["yaml"] = _memoized_inline()
    env.filters["yaml_block"] = _memoized_block()
    return env


@lru_cache(maxsize=8)
def _compiled_env(template_dir: str | None) -> ImmutableSandboxedEnvironment:
    """The environment with its template cache: templates compile once per process."""
    return _new_env(template_dir)


def _new_env(template_dir: str | Path | None = None) -> ImmutableSandboxedEnvironment:
    """Build the sandboxed environment.

    Args:
        template_dir: a directory of the user's templates; a file there replaces the
            shipped template of the same name, the others still come from the package.

    Raises:
        TemplateError: the directory does not exist.
    """
    search: list[str] = []
    if template_dir is not None:
        user = Path(template_dir)
        if not user.is_dir():
            raise TemplateError(f"{user}: template directory does not exist")
        search.append(str(user))
    search.append(str(SHIPPED_TEMPLATES))
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(search),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
        auto_reload=False,
        cache_size=64,
    )
    env.filters["yaml"] = _memoized_inline()
    env.filters["yaml_block"] = _memoized_block()
    return env

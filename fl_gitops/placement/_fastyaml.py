"""The fast way to read a large inventory: the Rust YAML parser, taken only when it agrees.

A 10,000-cluster ``kubectl get managedclusters -o yaml`` is about 16 MB; libyaml's events
walked in Python (``_inventory._YamlReader``) take seconds over it, ``yaml_rs`` a fraction
of that. But ``yaml_rs`` reads YAML 1.2 and the walker YAML 1.1 (what kubectl's own YAML
library and PyYAML speak): ``on`` is a string to one and ``True`` to the other, ``0777``
is 777 or 511, ``1e3`` a number or a string, ``!!set`` a set or refused, and yaml_rs
reads ``_5`` as 5. So the fast path answers only when it can tell that both readings give
the same objects, and returns ``None`` (read it with the walker) on any doubt:

* what kubectl never writes but YAML can hold sends the file to the walker: several
  documents or a directive, tags, anchors, aliases, complex or empty keys, merge keys,
  block scalars (``|``, ``>``), flow collections other than ``[]`` and ``{}``, tabs,
  control characters and Unicode line breaks;
* every plain scalar that starts with a character a YAML 1.1 non-string can start with
  (a digit, a sign, ``.``, ``_``, ``y``, ``n``, ``o``, ``~``, ``=``, ``<``) is read both
  ways, the walker's resolver against yaml_rs, once per distinct text, and must agree.

A parse error (a duplicate key too) also returns ``None``: the walker then reports it at
its ``file:line:col``, so located errors cost the fast path nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml

__all__ = ["fast_documents"]

# Indicators that count where a token starts: after these, or at the start of the text.
_TOKEN_START = " \n\r[]{},"
_INDICATORS = ("!", "&", "*", "?", "<<", "|", ">")
_CONTROL = re.compile("[\t\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")

# Plain scalars that may read differently: after ":" and spaces, or at a line's start (a key, or a
# value on its own line) after any "- ", up to a key's ": ". A token runs on to the line's
# end; _candidates() cuts it where a comment or a key's ": " may end the scalar.
_SPECIAL = "-+._0-9yYnNoO~=<"
_AFTER_COLON = re.compile(f":[ ]+([{_SPECIAL}][^\n]*)")
_LINE_START = re.compile(f"\n[ ]*(?:-[ ]+)*+([{_SPECIAL}](?:[^:\n]|:(?![ \n]))*)")
_PLAIN_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
# A UUID (a ManagedCluster's clusterID claim, one per cluster) is a string in both YAML
# versions: four inner dashes rule out every number and timestamp form of either.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_STR_TAGS = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:timestamp")


def fast_documents(text: str) -> list[Any] | None:
    """The documents of ``text`` as the YAML 1.1 walker would build them, or ``None``.

    Args:
        text: the whole inventory file, decoded.

    Returns:
        A one-item list holding the document, or ``None`` when the fast parser is not
        installed, the file is empty or holds something the two YAML versions may read
        differently, or it does not parse: read it with the walker then.
    """
    try:
        import yaml_rs
    except ImportError:  # pragma: no cover - a core dependency; a platform without its wheel
        return None
    if _doubtful(text) or not _scalars_agree(text, yaml_rs.loads):
        return None
    try:
        document = yaml_rs.loads(text, parse_datetime=False)
    except (ValueError, TypeError, RecursionError):
        return None
    if document is None:  # an empty file, or a lone null: the walker tells them apart
        return None
    return [document]


def _doubtful(text: str) -> bool:
    """Whether ``text`` holds YAML that kubectl never writes (see the module docstring).

    Each doubt is searched for as a literal (``str.find`` runs at memory speed, a regular
    expression over 16 MB does not) and confirmed by the characters around it.
    """
    return bool(
        any(_found(text, mark, lambda at: _starts_token(text, at)) for mark in _INDICATORS)
        or _found(text, "[", lambda at: text[at + 1 : at + 2] != "]")  # flow, but []
        or _found(text, "{", lambda at: text[at + 1 : at + 2] != "}")  # flow, but {}
        or _found(text, "]", lambda at: _KEY_AFTER.match(text, at + 1) is not None)
        or _found(text, "}", lambda at: _KEY_AFTER.match(text, at + 1) is not None)
        # an empty key: a ":" alone (colons end most lines, so find the rare blank first)
        or any(_found(text, f"{blank}:", lambda at: _ends_token(text, at + 2)) for blank in " \n")
        or (text.startswith(":") and _ends_token(text, 1))
        or text.startswith(("---", "...", "%"))
        or any(mark in text for mark in ("\n---", "\n...", "\n%"))
        or _CONTROL.search(text)
    )


_KEY_AFTER = re.compile("[ ]*:")


def _starts_token(text: str, at: int) -> bool:
    return at == 0 or text[at - 1] in _TOKEN_START


def _ends_token(text: str, at: int) -> bool:
    return at == len(text) or text[at] in " \n\r"


def _found(text: str, needle: str, confirm: Callable[[int], bool]) -> bool:
    """Whether ``needle`` occurs in ``text`` where ``confirm(position)`` holds."""
    at = text.find(needle)
    while at >= 0:
        if confirm(at):
            return True
        at = text.find(needle, at + 1)
    return False


def _candidates(token: str) -> set[str]:
    """Where the plain scalar that starts ``token`` may end: a comment, a key's ": "."""
    scalar = token.split(" #", 1)[0].rstrip()
    key = scalar.split(": ", 1)[0]
    return {scalar, key, key.removesuffix(":")}


def _scalars_agree(text: str, loads: Any) -> bool:
    """Whether every plain scalar that YAML 1.1 may read as a non-string reads the same."""
    tokens = set(_AFTER_COLON.findall(text))
    tokens.update(_LINE_START.findall("\n" + text))
    scalars = sorted(
        {
            c
            for t in tokens
            for c in _candidates(t)
            if c and not _PLAIN_INT.fullmatch(c) and not _UUID.fullmatch(c)
        }
    )
    if not scalars:
        return True
    # yaml_rs reads them all in one call, as the items of a block sequence.
    try:
        fast = loads("".join(f"- {scalar}\n" for scalar in scalars), parse_datetime=False)
    except (ValueError, TypeError):
        return False
    if not isinstance(fast, list) or len(fast) != len(scalars):
        return False
    return all(
        _same(_walker_reading(scalar), value) for scalar, value in zip(scalars, fast, strict=True)
    )


def _walker_reading(scalar: str) -> object:
    """A plain scalar as ``_inventory._YamlReader`` builds it (``...`` for what it refuses)."""
    tag = _RESOLVER.resolve(yaml.ScalarNode, scalar, (True, False))
    if tag in _STR_TAGS:
        return scalar
    if tag not in _CONSTRUCTOR.yaml_constructors:
        return ...  # merge and value keys: the walker refuses them
    try:
        return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, yaml.ScalarNode(tag, scalar))
    except (ValueError, yaml.YAMLError):
        return ...


def _same(walker: object, fast: object) -> bool:
    return type(walker) is type(fast) and repr(walker) == repr(fast)

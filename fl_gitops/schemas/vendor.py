"""Refresh the vendored CRD schemas from the upstream copies in a shared folder.

fl-gitops validates what it renders against the real OCM and Argo CD CRDs, but those files
are large (the ApplicationSet CRD is 1.4 MB, mostly descriptions) and live outside the
package. This script reads them from ``<shared>/ocm-crds`` and ``<shared>/argocd-crds``,
checks each file against the sha256 its folder's README records, drops every schema
``description`` (nothing else changes), and writes one JSON file per kind and version into
``fl_gitops/schemas/crds``, plus ``SOURCES.json`` naming the repository, path, commit and
sha256 each copy came from. The output is deterministic, so re-running it over the same
input gives the same bytes, which a test checks.

    python -m fl_gitops.schemas.vendor /work/shared
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "HAND_WRITTEN",
    "SOURCE_FOLDERS",
    "Source",
    "main",
    "read_sources",
    "strip_descriptions",
    "vendor",
]

SOURCE_FOLDERS: tuple[str, ...] = ("ocm-crds", "argocd-crds")

#: Schemas in ``crds/`` written by hand, with the note SOURCES.json records for them.
HAND_WRITTEN: Mapping[str, str] = {
    "argoproj.io_v1alpha1_AppProject.json": (
        "Hand-written: no AppProject CRD was vendored. Fields follow Argo CD's documented "
        "AppProject spec (sourceRepos, destinations, cluster/namespace resource white- and "
        "blacklists, description, roles, sourceNamespaces, orphanedResources, and the other "
        "documented spec fields)."
    ),
}

DEFAULT_OUT = Path(__file__).resolve().parent / "crds"

_SCHEMA_MAPS = ("properties", "patternProperties", "definitions", "$defs")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_ONES = ("additionalProperties", "not", "items", "additionalItems")


@dataclass(frozen=True)
class Source:
    """One upstream file, as its folder's README describes it."""

    file: str
    repository: str
    path: str
    commit: str
    sha256: str


def _cells(line: str) -> list[str]:
    return [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]


def read_sources(folder: Path) -> list[Source]:
    """Parse the README.md of a CRD folder: its file table, repository and commit."""
    readme = folder / "README.md"
    text = readme.read_text(encoding="utf-8")
    commit_match = re.search(r"Commit[^\n:]*:\s*([0-9a-f]{40})", text)
    if commit_match is None:
        raise ValueError(f"{readme}: no 'Commit: <40 hex digits>' line")
    repo_match = re.search(r"Source repository:\s*(https://\S+)", text)
    rows = [line for line in text.splitlines() if line.lstrip().startswith("|")]
    if len(rows) < 3:
        raise ValueError(f"{readme}: no file table")
    header = [cell.lower() for cell in _cells(rows[0])]
    path_col = next(i for i, name in enumerate(header) if "path" in name)
    sha_col = next(i for i, name in enumerate(header) if "sha256" in name)
    repo_col = next(
        (i for i, name in enumerate(header) if "repo" in name and "path" not in name), None
    )
    sources = []
    for row in rows[2:]:
        cells = _cells(row)
        if repo_col is not None:
            repository = cells[repo_col]
        elif repo_match is not None:
            repository = repo_match.group(1)
        else:
            raise ValueError(f"{readme}: no source repository for {cells[0]}")
        sources.append(
            Source(
                file=cells[0],
                repository=repository,
                path=cells[path_col],
                commit=commit_match.group(1),
                sha256=cells[sha_col],
            )
        )
    return sources


def strip_descriptions(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an OpenAPI v3 schema without its ``description`` keywords.

    Only the keyword goes: a property that happens to be called ``description`` stays.
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "description":
            continue
        if key in _SCHEMA_MAPS and isinstance(value, Mapping):
            out[key] = {name: strip_descriptions(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [strip_descriptions(sub) for sub in value]
        elif key in _SCHEMA_ONES and isinstance(value, Mapping):
            out[key] = strip_descriptions(value)
        elif key == "items" and isinstance(value, list):
            out[key] = [strip_descriptions(sub) for sub in value]
        else:
            out[key] = value
    return out


def _dump(data: Any) -> bytes:
    return (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def vendor(shared: Path, out: Path = DEFAULT_OUT) -> list[Path]:
    """Write the structural copies and SOURCES.json into ``out``; return the files written."""
    written: dict[str, bytes] = {}
    records: dict[str, dict[str, Any]] = {}
    for folder_name in SOURCE_FOLDERS:
        folder = shared / folder_name
        for source in read_sources(folder):
            raw = (folder / source.file).read_bytes()
            if _sha256(raw) != source.sha256:
                raise ValueError(
                    f"{folder / source.file}: sha256 {_sha256(raw)} differs from the "
                    f"README's {source.sha256}"
                )
            for document in yaml.load_all(raw, Loader=yaml.CSafeLoader):
                if not document or document.get("kind") != "CustomResourceDefinition":
                    continue
                spec = document["spec"]
                for version in spec["versions"]:
                    name = f"{spec['group']}_{version['name']}_{spec['names']['kind']}.json"
                    written[name] = _dump(
                        {
                            "apiVersion": f"{spec['group']}/{version['name']}",
                            "kind": spec["names"]["kind"],
                            "scope": spec["scope"],
                            "plural": spec["names"]["plural"],
                            "singular": spec["names"].get("singular")
                            or spec["names"]["kind"].lower(),
                            "listKind": spec["names"].get("listKind")
                            or f"{spec['names']['kind']}List",
                            "subresources": version.get("subresources") or {},
                            "openAPIV3Schema": strip_descriptions(
                                version["schema"]["openAPIV3Schema"]
                            ),
                        }
                    )
                    records[name] = {
                        "handWritten": False,
                        "repository": source.repository,
                        "path": source.path,
                        "commit": source.commit,
                        "sha256": source.sha256,
                        "copiedFrom": f"{folder_name}/{source.file}",
                    }
    for name, note in HAND_WRITTEN.items():
        hand = (DEFAULT_OUT / name).read_bytes()
        written[name] = hand
        records[name] = {"handWritten": True, "note": note, "sha256": _sha256(hand)}
    written["SOURCES.json"] = _dump(dict(sorted(records.items())))

    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.json"):
        if stale.name not in written:
            stale.unlink()
    paths = []
    for name, data in sorted(written.items()):
        path = out / name
        if not (path.exists() and path.read_bytes() == data):
            path.write_bytes(data)
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m fl_gitops.schemas.vendor SHARED [--out DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m fl_gitops.schemas.vendor")
    parser.add_argument("shared", type=Path, help="folder holding ocm-crds/ and argocd-crds/")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write")
    args = parser.parse_args(argv)
    try:
        paths = vendor(args.shared, args.out)
    except (OSError, ValueError, KeyError, yaml.YAMLError) as error:
        print(f"vendor: {error}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

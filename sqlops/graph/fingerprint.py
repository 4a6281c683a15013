"""Fingerprints: the identity of a version of a node's data.

A fingerprint covers the node's canonical SQL (formatting and comments do not count), the config
that affects its data, and its upstream fingerprints. This is the one place that decides what a
"change" is; column-level precision refines `_upstream_part`.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from sqlops.project.definition import Kind, Node

if TYPE_CHECKING:
    from sqlops.project.loader import Project


def fingerprints(project: Project, data_stamps: dict[str, str] | None = None) -> dict[str, str]:
    """`data_stamps` identify the data of each source: new raw data is a new version downstream.

    Without stamps (inspection commands) only the code counts. What flows downstream is the
    identity of a node's rows; how they are stored (table or view) makes only its own version.
    """
    stamps = data_stamps or {}
    rows: dict[str, str] = {}
    result: dict[str, str] = {}
    for node_id in project.graph.topological():
        node = project.nodes[node_id]
        if node.kind is Kind.TEST:
            continue
        parts = [node.kind.value, *_data_parts(node), stamps.get(node_id, "")]
        parts += [f"{dep}={rows.get(dep, '')}" for dep in sorted(node.depends_on)]
        rows[node_id] = _hash(parts)
        result[node_id] = _hash([rows[node_id], _storage(node)])
    return result


def _data_parts(node: Node) -> list[str]:
    """What decides a node's rows, besides its upstream and its source data."""
    if node.kind is Kind.SOURCE:
        # a file is read with the declared types; a table in place is what it is
        return [node.canonical, f"location={node.location}"] if node.is_versioned else []
    return [node.canonical]


def _storage(node: Node) -> str:
    return f"materialized={node.materialized.value}" if node.kind is Kind.MODEL else ""


def _hash(parts: list[str]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def assertions_hash(node: Node, fingerprints_of: dict[str, str]) -> str:
    """Changes when the node's assertions, or what they read, change: a reused version is
    re-tested then, not rebuilt."""
    digest = hashlib.sha256()
    for dep in sorted(node.check_deps):
        digest.update(f"{dep}={fingerprints_of.get(dep, '')}\x00".encode())
    for a in node.assertions:
        digest.update(
            f"{a.kind}|{a.blocking}|{a.name}|{a.text}|{a.where}|{a.tolerate}\x00".encode()
        )
    return digest.hexdigest()

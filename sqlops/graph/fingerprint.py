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

    Without stamps (inspection commands) only the code counts.
    """
    stamps = data_stamps or {}
    result: dict[str, str] = {}
    for node_id in project.graph.topological():
        node = project.nodes[node_id]
        if node.kind is Kind.TEST:
            continue
        digest = hashlib.sha256()
        for part in (node.kind.value, _data_config(node), node.canonical, stamps.get(node_id, "")):
            digest.update(part.encode())
            digest.update(b"\x00")
        for dep in sorted(node.depends_on):
            digest.update(_upstream_part(project.nodes[dep], result).encode())
            digest.update(b"\x00")
        result[node_id] = digest.hexdigest()
    return result


def _data_config(node: Node) -> str:
    if node.kind is Kind.MODEL:
        return f"materialized={node.materialized.value}"
    if node.kind is Kind.SOURCE:
        return f"location={node.location or ''}"
    return ""


def _upstream_part(upstream: Node, known: dict[str, str]) -> str:
    return f"{upstream.id}={known.get(upstream.id, '')}"


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

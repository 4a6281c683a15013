"""Fingerprints: the identity of a version of a node's data.

A node's data is its row set and its columns. Each has a fingerprint: a source's or a seed's
comes from its declaration and its data; a model's row set from the SQL that decides its rows and
the upstream fingerprints that SQL reads; a model's column from the SQL that computes it, the
upstream column fingerprints it reads, and its row set (see `graph/lineage.py`). A model's version
is the fingerprint of all its columns and its row set, plus how it is stored. So changing or adding
a column that no downstream model reads changes no downstream fingerprint.

A model whose lineage is unknown falls back to its whole SQL and the whole identity of every
upstream node: never less safe, only less precise.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlops.project.definition import Kind, Node
from sqlops.syntax import normalize_name

if TYPE_CHECKING:
    from sqlops.project.loader import Project


@dataclass
class DataIdentity:
    """The fingerprints of one node's rows and columns."""

    rows: str
    columns: dict[str, str] = field(default_factory=dict)
    whole: str = ""  # rows and every column: what a reader of unknown lineage depends on

    def column(self, name: str) -> str:
        return self.columns.get(name, self.whole)


def fingerprints(project: Project, data_stamps: dict[str, str] | None = None) -> dict[str, str]:
    """`data_stamps` identify the data of each source: new raw data is a new version downstream.

    Without stamps (inspection commands) only the code counts. What flows downstream is the
    identity of a node's rows and columns; how they are stored (table or view) makes only its own
    version.
    """
    return {n: fp for n, (fp, _) in identities(project, data_stamps).items()}


def identities(
    project: Project, data_stamps: dict[str, str] | None = None
) -> dict[str, tuple[str, DataIdentity]]:
    """For each node but tests: its version fingerprint and the identity of its data."""
    stamps = data_stamps or {}
    dialect = project.dialect
    data: dict[str, DataIdentity] = {}
    result: dict[str, tuple[str, DataIdentity]] = {}
    project.lineage.read_all()
    for node_id in project.graph.topological():
        node = project.nodes[node_id]
        if node.kind is Kind.TEST:
            continue
        lineage = project.lineage.get(node_id)
        if node.kind is Kind.MODEL and lineage is not None:
            rows = _hash(
                ["rows", lineage.row_code]
                + [f"{n}.{c}={data[n].column(c)}" for n, c in lineage.row_reads]
                + [f"{dep}={data[dep].rows}" for dep in sorted(node.depends_on)]
            )
            identity = DataIdentity(rows)
            for col in lineage.columns:
                identity.columns[col.name] = _hash(
                    ["column", col.code, rows]
                    + [f"{n}.{c}={data[n].column(c)}" for n, c in col.reads]
                )
            parts = [rows, *(identity.columns[c.name] for c in lineage.columns)]
        else:
            parts = [node.kind.value, *_data_parts(node), stamps.get(node_id, "")]
            parts += [f"{dep}={data[dep].whole}" for dep in sorted(node.depends_on)]
            identity = DataIdentity(_hash(parts))
            if node.kind is not Kind.MODEL:  # a declared column is its own, read or not
                for declared in node.columns or ():
                    name = normalize_name(declared.name, dialect)
                    identity.columns[name] = _hash([identity.rows, name, declared.type or ""])
        identity.whole = _hash(parts)
        data[node_id] = identity
        result[node_id] = (_hash([identity.whole, _storage(node)]), identity)
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
    # each part followed by a NUL, hashed in one call
    return hashlib.sha256("".join([f"{part}\x00" for part in parts]).encode()).hexdigest()


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

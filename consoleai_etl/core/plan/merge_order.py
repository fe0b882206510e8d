"""The order merge mode writes its tables in: the APPLICATION's foreign keys, not only the
source's (the application may declare keys the legacy schema never had, or the other way
round).

A key PostgreSQL can defer (DEFERRABLE, as Django creates every foreign key) is deferred
for the merge's transaction (``SET CONSTRAINTS ... DEFERRED``) and checked once every table
is written, so it does not constrain the order and a cycle of such keys merges as it is.
The NOT DEFERRABLE keys between merged tables order the tables, parents first (otherwise
in the source's foreign-key order); a NOT DEFERRABLE key checks each statement's rows at
its end, so a self-reference needs no order. A cycle of NOT DEFERRABLE keys between tables
has no order that works once both tables get rows: the merge plan refuses it
(``unorderable``) before anything is written, naming the tables, the keys and the ways out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from psycopg import sql

from consoleai_etl.core.target.existing import ExistingForeignKey

if TYPE_CHECKING:
    from consoleai_etl.core.plan.merge_plan import TableMerge

Edge = tuple[str, str, ExistingForeignKey]  # (child, parent) source tables and the key


def _edges(merges: Mapping[str, TableMerge]) -> list[Edge]:
    """The application's keys between two merged tables (by source name) that the merge
    writes: at least one of their columns is filled from the source."""
    by_target = {(m.target.schema, m.target.name): name for name, m in merges.items()}
    edges = []
    for name, merge in merges.items():
        filled = {c.target for c in merge.columns}
        for fk in merge.target.foreign_keys:
            parent = by_target.get((fk.ref_schema, fk.ref_table))
            if parent is not None and parent != name and filled & set(fk.columns):
                edges.append((name, parent, fk))
    return edges


def _blocking(merges: Mapping[str, TableMerge], tables: Sequence[str]) -> list[Edge]:
    return [e for e in _edges(merges) if not e[2].deferrable and {e[0], e[1]} <= set(tables)]


def _stuck(tables: Sequence[str], edges: list[Edge]) -> tuple[list[str], list[str]]:
    """(``tables`` in an order that puts each after its parents along ``edges``, keeping
    the given order otherwise; the tables left over, which wait on a cycle)."""
    waiting = {t: {p for c, p, _ in edges if c == t} for t in tables}
    ordered: list[str] = []
    while True:
        ready = next((t for t in tables if t in waiting and not waiting[t]), None)
        if ready is None:
            return ordered, list(waiting)
        ordered.append(ready)
        del waiting[ready]
        for parents in waiting.values():
            parents.discard(ready)


def write_order(merges: Mapping[str, TableMerge], tables: Sequence[str]) -> list[str]:
    """``tables`` (the source's foreign-key order) in the order the application's NOT
    DEFERRABLE keys need; the merge plan refused any cycle of them."""
    ordered, left = _stuck(tables, _blocking(merges, tables))
    return ordered + left


def deferred_keys(merges: Mapping[str, TableMerge]) -> sql.Composable | None:
    """The application's DEFERRABLE keys between merged tables, as ``SET CONSTRAINTS``
    names them; None when there is none."""
    keys = {(merges[c].target.schema, fk.name) for c, _, fk in _edges(merges) if fk.deferrable}
    return sql.SQL(", ").join(sql.Identifier(*key) for key in sorted(keys)) if keys else None


def unorderable(merges: Mapping[str, TableMerge]) -> list[str]:
    """The merge plan's problem for a cycle of NOT DEFERRABLE keys between merged tables,
    if there is one: one line naming them and the ways out."""
    tables = list(merges)
    edges = _blocking(merges, tables)
    _, left = _stuck(tables, edges)
    # Peel the tables that only wait on a cycle: what stays is the cycles.
    while peel := [t for t in left if not any(p == t and c in left for c, p, _ in edges)]:
        left = [t for t in left if t not in peel]
    if not left:
        return []
    keys = [
        f"{fk.name} ({child} -> {parent})"
        for child, parent, fk in edges
        if child in left and parent in left
    ]
    return [
        f"tables {', '.join(left)}: the target's foreign keys {', '.join(keys)} are NOT "
        "DEFERRABLE and form a cycle, so no order of writing the tables satisfies them: make "
        "one of them DEFERRABLE (ALTER TABLE ... ALTER CONSTRAINT ... DEFERRABLE INITIALLY "
        "DEFERRED), or leave its column out (ignore_columns) or its table (skip_tables)"
    ]

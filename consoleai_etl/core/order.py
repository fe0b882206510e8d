"""Load order from foreign keys: parents before children, cycles broken deterministically.

Dagster's asset graph must be acyclic, so an FK that would close a cycle is *deferred*: its
table does not wait for the parent, and the constraint is created at promotion time, once
every table is staged.
"""

from __future__ import annotations

from dataclasses import dataclass

from consoleai_etl.core.catalog import Catalog, ForeignKey


@dataclass(frozen=True)
class LoadOrder:
    tables: tuple[str, ...]
    upstream: dict[str, tuple[str, ...]]  # table -> parent tables it waits for
    deferred: tuple[tuple[str, ForeignKey], ...]  # (child table, FK) created at promotion


def load_order(catalog: Catalog) -> LoadOrder:
    names = {t.name for t in catalog.tables}
    parents = {
        t.name: {fk.ref_table for fk in t.foreign_keys if fk.ref_table in names} - {t.name}
        for t in catalog.tables
    }
    ordered: list[str] = []
    remaining = dict(sorted(parents.items()))
    cut: set[tuple[str, str]] = set()
    while remaining:
        ready = [n for n, ps in remaining.items() if not ps - set(ordered)]
        if not ready:
            # A cycle: release the table with the fewest unmet parents (then by name).
            pick = min(remaining, key=lambda n: (len(remaining[n] - set(ordered)), n))
            cut |= {(pick, p) for p in remaining[pick] - set(ordered)}
            ready = [pick]
        for name in ready:
            ordered.append(name)
            del remaining[name]
    upstream = {n: tuple(sorted(p for p in parents[n] if (n, p) not in cut)) for n in ordered}
    deferred = tuple(
        (t.name, fk)
        for t in catalog.tables
        for fk in t.foreign_keys
        if (t.name, fk.ref_table) in cut
    )
    return LoadOrder(tables=tuple(ordered), upstream=upstream, deferred=deferred)

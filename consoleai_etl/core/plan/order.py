"""Load order from foreign keys: parents before children, cycles broken deterministically.

Dagster's asset graph must be acyclic, so an FK that would close a cycle is *deferred*: its
table does not wait for the parent, and the constraint is created at promotion time, once
every table is staged.
"""

from __future__ import annotations

from dataclasses import dataclass

from consoleai_etl.core.source.catalog import Catalog, ForeignKey


@dataclass(frozen=True)
class LoadOrder:
    tables: tuple[str, ...]
    upstream: dict[str, tuple[str, ...]]  # table -> parent tables it waits for
    deferred: tuple[tuple[str, ForeignKey], ...]  # (child table, FK) created at promotion


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    """Whether ``goal`` is reachable from ``start`` following parent edges."""
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo += graph.get(node, ())
    return False


def load_order(catalog: Catalog) -> LoadOrder:
    names = {t.name for t in catalog.tables}
    parents = {
        t.name: {fk.ref_table for fk in t.foreign_keys if fk.ref_table in names} - {t.name}
        for t in catalog.tables
    }
    ordered: list[str] = []
    waiting = {name: set(ps) for name, ps in sorted(parents.items())}  # unmet, uncut parents
    cut: set[tuple[str, str]] = set()
    while waiting:
        ready = [n for n, ps in waiting.items() if not ps]
        if not ready:
            # Stuck: every waiting table waits on a cycle. Cut, in the table of a cycle with
            # the fewest parents (then the first name), only the edges inside its cycle.
            in_cycle = [n for n in waiting if any(_reaches(waiting, p, n) for p in waiting[n])]
            pick = min(in_cycle, key=lambda n: (len(waiting[n]), n))
            cycle_parents = {p for p in waiting[pick] if _reaches(waiting, p, pick)}
            cut |= {(pick, p) for p in cycle_parents}
            waiting[pick] -= cycle_parents
            continue
        for name in ready:
            ordered.append(name)
            del waiting[name]
        for ps in waiting.values():
            ps.difference_update(ready)
    upstream = {n: tuple(sorted(p for p in parents[n] if (n, p) not in cut)) for n in ordered}
    deferred = tuple(
        (t.name, fk)
        for t in catalog.tables
        for fk in t.foreign_keys
        if (t.name, fk.ref_table) in cut
    )
    return LoadOrder(tables=tuple(ordered), upstream=upstream, deferred=deferred)

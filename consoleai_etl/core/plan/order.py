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
    # The tables of each foreign-key cycle (a table referencing itself is one), in load
    # order: merge mode stages each as one unit (``pipeline.stage_cycle``).
    cycles: tuple[tuple[str, ...], ...] = ()

    def cycle(self, table: str) -> tuple[str, ...]:
        """The tables of ``table``'s cycle; () when it is in none."""
        return next((c for c in self.cycles if table in c), ())


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


def _reachable(graph: dict[str, set[str]], starts: set[str]) -> set[str]:
    """Every node reachable from ``starts`` (included) following parent edges."""
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo += graph.get(node, ())
    return seen


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
    return LoadOrder(
        tables=tuple(ordered), upstream=upstream, deferred=deferred, cycles=cycles(catalog, ordered)
    )


def cycles(catalog: Catalog, ordered: list[str]) -> tuple[tuple[str, ...], ...]:
    """The strongly connected components of the foreign-key graph that hold a cycle: two
    tables or more that reach each other, or one table referencing itself."""
    names = set(ordered)
    graph = {t.name: {fk.ref_table for fk in t.foreign_keys} & names for t in catalog.tables}
    reach = {n: _reachable(graph, graph[n]) for n in names}  # tables n's keys lead to
    found: list[tuple[str, ...]] = []
    for name in ordered:
        if name in reach[name] and not any(name in c for c in found):
            found.append(tuple(n for n in ordered if n in reach[name] and name in reach[n]))
    return tuple(found)

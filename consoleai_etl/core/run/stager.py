"""Stage a run's tables two at a time, so one table's PostgreSQL work overlaps the next
table's Python work.

Staging a table is Python-bound while its rows stream (reading, converting, hashing: one
core) and PostgreSQL-bound afterwards (keys, indexes, foreign keys, the checks' scans,
which leave Python waiting on a socket). So a run hands its tables to a ``Stager``: two
threads stage them in foreign-key order, all inside the one Dagster step of the table
assets. Only one table streams at a time (``Turn``: two streams would take turns on the
GIL, measured slower than one after the other); the other thread meanwhile builds keys,
validates foreign keys and runs checks, which wait on PostgreSQL. A table waits for its
parents to be staged before it creates its foreign keys (they need the parents' keys).
In merge mode the tables of one foreign-key cycle are one unit, staged by one thread
(``pipeline.stage_cycle``), so the key closing the cycle is asked once all are staged.
Progress lines of every table go to the step's log while it waits (``progress``).
"""

from __future__ import annotations

import heapq
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from consoleai_etl.core.plan.profile import size_estimate
from consoleai_etl.core.run import interrupt
from consoleai_etl.core.run.pipeline import (
    MigrationConfig,
    prepare_staging,
    stage_cycle,
    stage_table,
)
from consoleai_etl.core.run.progress import (
    Progress,
    TableFinished,
    Waiting,
    listening,
    publish,
    waited,
)
from consoleai_etl.core.run.report import TableReport
from consoleai_etl.core.run.sessions import Sessions
from consoleai_etl.core.source.catalog import ForeignKey, Table
from consoleai_etl.core.source.connection import open_source

WORKERS = 2

Staged = TypeVar("Staged", "TableToStage", "Unit")  # what ``largest_first`` orders


@dataclass(frozen=True)
class TableToStage:
    table: Table
    parents: tuple[str, ...]  # tables whose keys its foreign keys need
    deferred: tuple[ForeignKey, ...]  # foreign keys closing a cycle: created at promotion
    cycle: tuple[str, ...] = ()  # the tables of its foreign-key cycle, itself included

    @property
    def name(self) -> str:
        return self.table.name


@dataclass(frozen=True)
class Unit:
    """Tables one thread stages together: a table, or in merge mode the tables of one
    foreign-key cycle (``pipeline.stage_cycle``), named after its first table."""

    tables: tuple[TableToStage, ...]
    parents: tuple[str, ...]  # the units whose keys its foreign keys need

    @property
    def name(self) -> str:
        return self.tables[0].name


def units(tables: Sequence[TableToStage], *, cycles: bool) -> list[Unit]:
    """``tables`` as units in their order: with ``cycles``, the tables of one cycle (of
    those given) are one unit, at the place of its first table."""
    head: dict[str, str] = {}  # table -> the first table of its unit
    given = {t.name for t in tables}
    for t in tables:
        head[t.name] = next((n for n in t.cycle if n in given), t.name) if cycles else t.name
    grouped: dict[str, list[TableToStage]] = {}
    for t in tables:
        grouped.setdefault(head[t.name], []).append(t)
    return [
        Unit(
            tuple(members),
            tuple(sorted({head[p] for t in members for p in t.parents if p in head} - {name})),
        )
        for name, members in grouped.items()
    ]


def table_sizes(sqlite_path: str | Path, tables: Sequence[TableToStage]) -> dict[str, int]:
    """Each table's ``size_estimate``: what ``largest_first`` weighs."""
    with closing(open_source(sqlite_path)) as src:
        return {t.table.name: size_estimate(src, t.table) for t in tables}


def largest_first(tables: Sequence[Staged], rows: dict[str, int]) -> list[Staged]:
    """A foreign-key order that reaches the largest tables as early as their parents allow.

    The biggest table's stream is the run's longest piece of Python work, and everything
    else (small tables' streams, its own keys and checks) can only overlap what comes after
    it. So among the tables whose parents are all in, the next is the one heading the
    heaviest chain of descendants (its rows plus its heaviest child's chain). Every table
    still follows all its parents, so a thread never waits for a table no thread has
    started (the pool runs tables in submission order)."""
    known = {t.name: t for t in tables}
    children: dict[str, list[str]] = {name: [] for name in known}
    waiting = {name: {p for p in t.parents if p in known} for name, t in known.items()}
    for name, parents in waiting.items():
        for parent in parents:
            children[parent].append(name)
    weight: dict[str, int] = {}

    def chain(name: str) -> int:
        if name not in weight:
            weight[name] = rows.get(name, 0) + max(map(chain, children[name]), default=0)
        return weight[name]

    position = {name: i for i, name in enumerate(known)}
    ready = [(-chain(n), position[n], n) for n, parents in waiting.items() if not parents]
    heapq.heapify(ready)
    ordered = []
    while ready:
        _, _, name = heapq.heappop(ready)
        ordered.append(known[name])
        for child in children[name]:
            waiting[child].discard(name)
            if not waiting[child]:
                heapq.heappush(ready, (-chain(child), position[child], child))
    return ordered


class Turn:
    """The streaming turn: one table streams at a time and, of the tables being staged that
    have not streamed yet, the earliest in staging order goes first, whichever thread asks
    first. So a small table that another table waits for (its parent, or the Dagster step
    ahead of it) is not left queuing behind the big one the other thread took."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._busy = False
        self._pending: set[int] = set()  # ranks of tables started and not yet streamed

    def begin(self, rank: int) -> None:
        with self._changed:
            self._pending.add(rank)

    def end(self, rank: int) -> None:
        with self._changed:
            self._pending.discard(rank)
            self._changed.notify_all()

    def acquire(self, rank: int) -> None:
        with self._changed:
            self._pending.add(rank)
            self._changed.wait_for(lambda: not self._busy and rank == min(self._pending))
            self._pending.discard(rank)
            self._busy = True

    def release(self) -> None:
        with self._changed:
            self._busy = False
            self._changed.notify_all()

    def hold(self, rank: int) -> AbstractContextManager:
        """The turn of the table at ``rank``, as a context manager entered once per attempt
        to stream the table (a lost connection streams it again)."""
        return _Hold(self, rank)


class _Hold(AbstractContextManager):
    def __init__(self, turn: Turn, rank: int) -> None:
        self.turn, self.rank = turn, rank

    def __enter__(self) -> None:
        self.turn.acquire(self.rank)

    def __exit__(self, *exc_info: object) -> None:
        self.turn.release()


class Stager:
    """Stages ``tables`` on ``WORKERS`` threads, in the order of ``largest_first``."""

    def __init__(
        self,
        config: MigrationConfig,
        run_id: str,
        tables: Sequence[TableToStage],
        progress_every: float,
        streaming: AbstractContextManager | None = None,
    ) -> None:
        self.config, self.run_id, self.progress_every = config, run_id, progress_every
        # One table streams at a time (see the module doc); a test may watch it.
        self.turn = Turn()
        self.streaming: Callable[[int], AbstractContextManager] = (
            (lambda rank: streaming) if streaming else self.turn.hold
        )
        prepare_staging(config, run_id)  # once, before two threads would race for it
        self.sessions = Sessions(config.sqlite_path, config.pg_dsn)
        self.lines: queue.SimpleQueue[str] = queue.SimpleQueue()  # progress, of any table
        self.futures: dict[str, Future[list[TableReport]]] = {}  # by unit
        self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="stage")
        staged = units(tables, cycles=config.merge_plan is not None)
        sizes = table_sizes(config.sqlite_path, tables)
        weights = {u.name: sum(sizes[t.name] for t in u.tables) for u in staged}
        for rank, unit in enumerate(largest_first(staged, weights)):
            self.futures[unit.name] = self.pool.submit(self._stage, unit, rank)

    def _stage(self, unit: Unit, rank: int) -> list[TableReport]:
        parents = [self.futures[p] for p in unit.parents if p in self.futures]
        self.turn.begin(rank)
        try:
            if any(t.cycle for t in unit.tables) and self.config.merge_plan is not None:
                reports = stage_cycle(
                    self.config,
                    [t.table for t in unit.tables],
                    self.run_id,
                    progress=lambda name: Progress(name, self.progress_every, self.lines.put),
                    before_foreign_keys=lambda: wait(parents),
                    streaming=self.streaming(rank),
                    sessions=self.sessions,
                )
            else:
                [staged] = unit.tables
                reports = [
                    stage_table(
                        self.config,
                        staged.table,
                        self.run_id,
                        deferred=staged.deferred,
                        progress=Progress(staged.name, self.progress_every, self.lines.put),
                        before_foreign_keys=lambda: wait(parents),
                        streaming=self.streaming(rank),
                        sessions=self.sessions,
                    )
                ]
            interrupt.check()  # a table finished after a stop request is not reported done
            for report in reports:
                publish(TableFinished(report))
            return reports
        finally:
            self.turn.end(rank)

    def reports(self, log: Callable[[str], None]) -> dict[str, TableReport]:
        """Wait for every table's report. Meanwhile the progress lines of every table being
        staged go to ``log``, so the run log stays live, and so does what a table waits
        for (``Waiting``: a lost connection)."""
        with listening(lambda e: isinstance(e, Waiting) and self.lines.put(waited(e))):
            try:
                return self._reports(log)
            except BaseException:  # e.g. Dagster's interrupt: the other tables stop too
                interrupt.request()
                raise

    def _reports(self, log: Callable[[str], None]) -> dict[str, TableReport]:
        reports: dict[str, TableReport] = {}
        for future in self.futures.values():
            done = False
            while not done:
                with suppress(TimeoutError):
                    reports |= {r.table: r for r in future.result(timeout=0.2)}
                    done = True
                while not self.lines.empty():
                    log(self.lines.get())
        return reports

    def close(self) -> None:
        """End of the run: tables not started yet are dropped (a run stopped half-way does
        not go on staging them), the ones being staged are waited for, so no thread
        outlives the run; then the threads' connections are closed."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.sessions.close()

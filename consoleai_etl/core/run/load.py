"""Load one table: profile, plan, stream rows through the converters into binary COPY.

Everything for a table happens in one PostgreSQL transaction in the run's staging
(``target.staging``): the bare table, the COPY, the quarantine rows, then keys, indexes and
foreign keys. A failure rolls all of it back, so a table is either fully staged or absent.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from consoleai_etl.core.encode import rowcopy
from consoleai_etl.core.encode.codec import ColumnCodec, codec_for
from consoleai_etl.core.encode.tuples import MOD, SIGNATURE, TRAILER, TupleEncoder
from consoleai_etl.core.errors import ConversionError
from consoleai_etl.core.plan import planner
from consoleai_etl.core.plan.merge_plan import MergePlan
from consoleai_etl.core.plan.profile import Profile
from consoleai_etl.core.plan.rules import CastingRule
from consoleai_etl.core.plan.table_plan import TablePlan
from consoleai_etl.core.run.progress import FOREIGN_KEYS, KEYS, phase
from consoleai_etl.core.source.catalog import ForeignKey, Table
from consoleai_etl.core.source.connection import UndecodableText, strict_text
from consoleai_etl.core.source.reader import BATCH_ROWS, RowReader
from consoleai_etl.core.target import bookkeeping, constraints, ddl
from consoleai_etl.core.target.ddl import Place
from consoleai_etl.core.target.generated import compute_generated


@dataclass
class LoadResult:
    table: str
    target_table: str
    source_rows: int
    loaded_rows: int
    quarantined_rows: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    checksum: int = 0  # of the loaded rows, computed from the stream (see ``canonical``)
    checksum_seconds: float = 0.0  # part of ``seconds`` spent hashing the stream
    keys_seconds: float = 0.0  # part of ``seconds``: out-of-range rows, keys and indexes
    foreign_keys_seconds: float = 0.0  # part of ``seconds``: validating the foreign keys
    window: tuple[float, float] = (0.0, 0.0)  # Unix time the load started and ended

    @property
    def rows_per_second(self) -> float:
        return self.source_rows / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Stream:
    """One pass of a table's rows into COPY: what it sent, hashed and set aside."""

    encoder: TupleEncoder  # counts the rows sent and sums their hashes
    quarantine: list[tuple] = field(default_factory=list)
    codecs: list[ColumnCodec] = field(default_factory=list)
    note: str | None = None  # why the optimistic pass was abandoned, if it was
    census: Profile = field(default_factory=dict)  # storage classes read (compiled pass)


def active_codecs(plan: TablePlan, *, optimistic: bool) -> list[tuple[int, ColumnCodec]]:
    """(position, codec) of the columns whose values must be converted on their way."""
    return [
        (i, codec)
        for i, c in enumerate(plan.columns)
        if (codec := codec_for(c, optimistic=optimistic))
    ]


def _python_tuples(
    src: sqlite3.Connection,
    plan: TablePlan,
    stream: _Stream,
    active: list[tuple[int, ColumnCodec]],
) -> Iterator[bytes]:
    """COPY data, one batch at a time, read by the source reader and encoded by psycopg;
    refused rows go to the stream's quarantine list."""
    for batch in RowReader(src, plan, active).batches():
        stream.quarantine += batch.refused
        yield stream.encoder.encode(batch.values)  # also hashes each row for the checksum


def _copy_rows(
    src: sqlite3.Connection,
    pg: psycopg.Connection,
    plan: TablePlan,
    schema: Place,
    progress: Callable[[int], None] | None,
    *,
    optimistic: bool,
    compiled: object | None = None,
) -> _Stream:
    """Create the table and COPY the rows into it, in a savepoint (a refused pass leaves
    nothing behind): through the compiled reader of the SQLite file ``compiled``
    (``rowcopy``: a refused value raises; the stream's ``census`` is the table's profile),
    or else the Python way (refused rows are set aside for the quarantine)."""
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        ddl.qualified(schema, plan.name),
        sql.SQL(", ").join(sql.Identifier(c.name) for c in plan.columns),
    )
    active = active_codecs(plan, optimistic=optimistic)
    stream = _Stream(TupleEncoder(pg, [c.pg_type.kind for c in plan.columns]))
    batches = (
        rowcopy.tuples(compiled, plan, active, stream.encoder, BATCH_ROWS, stream.census)
        if compiled
        else _python_tuples(src, plan, stream, active)
    )
    with pg.transaction():
        pg.execute(ddl.create_table(plan, schema))
        with pg.cursor().copy(copy_sql) as copy:
            copy.write(SIGNATURE)
            if progress:
                progress(0)  # the rows start flowing (again, on a second pass)
            for data in batches:
                copy.write(data)
                if progress:
                    progress(stream.encoder.rows)
            copy.write(TRAILER)
    stream.codecs = [codec for _, codec in active]
    return stream


def _stream_table(
    src: sqlite3.Connection,
    pg: psycopg.Connection,
    plan: TablePlan,
    schema: Place,
    progress: Callable[[int], None] | None,
    rules: tuple[CastingRule, ...],
    *,
    compiled: object | None,
) -> tuple[TablePlan, _Stream]:
    """Create and fill the table; returns the plan it was loaded with, and the stream.

    With ``compiled`` (``rowcopy.compiled_source``), ``plan`` is guessed from a sample and the
    compiled reader streams the table: that pass counts the real storage classes on the
    way and keeps its rows if they call for the same plan (``planner.measured``).
    Otherwise, or when a value is refused, the table is profiled and planned again (which
    widens the columns some value did not fit, ``planner.plan_source``) and streamed the
    Python way: optimistically (TEXT decoded strictly, server-checked text untouched),
    then, if the source or PostgreSQL refuses a value, the careful way, value by value, so
    exactly the refused rows are quarantined."""
    why = None
    if compiled:
        try:
            stream = _copy_rows(src, pg, plan, schema, progress, optimistic=True, compiled=compiled)
            return planner.measured(plan, stream.census, rules), stream
        except (ConversionError, rowcopy.UnexpectedValue, planner.Refuted):
            pass  # the profiled plan widens or quarantines what was refused
        except UnicodeDecodeError:
            why = _NOT_UTF8
        except psycopg.errors.DataError:
            pass  # e.g. a text longer than its declared length: the profiled plan widens it
        plan = planner.plan_source(src, plan.table, rules)
    if why is None:
        try:
            with strict_text(src):
                return plan, _copy_rows(src, pg, plan, schema, progress, optimistic=True)
        except UndecodableText:
            why = _NOT_UTF8
        except psycopg.errors.DataError as exc:
            why = _refusal(exc)
    stream = _copy_rows(src, pg, plan, schema, progress, optimistic=False)
    stream.note = f"streamed again value by value, as the fast path was refused: {why}"
    return plan, stream


_NOT_UTF8 = "a TEXT value is not valid UTF-8"


def _refusal(exc: psycopg.errors.DataError) -> str:
    return " ".join(filter(None, [exc.diag.message_primary, exc.diag.context]))


@contextmanager
def _waited(turn: AbstractContextManager, waits: list[float]) -> Iterator[None]:
    """Enter ``turn``, appending the time it took to ``waits``: a table's own seconds
    exclude the time it waited for another table."""
    started = time.perf_counter()
    with turn:
        waits.append(time.perf_counter() - started)
        yield


@dataclass(frozen=True)
class LoadOptions:
    rules: tuple[CastingRule, ...] = ()
    orphans: str = "quarantine"
    deferred: tuple[ForeignKey, ...] = ()  # FKs closing a cycle: created at promotion
    before_foreign_keys: Callable[[], object] | None = None  # e.g. wait for the parents
    # Held while the table streams (the Python-bound part), so that a second table staged
    # at the same time overlaps only its PostgreSQL work with it.
    streaming: AbstractContextManager = field(default_factory=nullcontext)
    # False in merge mode: the staged table is only merged from, then dropped, so its
    # non-unique indexes would be built for nothing (its keys still prove uniqueness).
    indexes: bool = True
    # False in merge mode too: the application's table keeps its own defaults, so the
    # source's are neither set on the staged table nor reported.
    defaults: bool = True
    # False in merge mode too: the application's table decides whether a column is
    # computed; a SQLite generated column's values are merged like any column's.
    generated: bool = True
    # Merge mode: a parent row may be in the application's table too (``checks.parents``).
    merge: MergePlan | None = None


def load_table(
    src: sqlite3.Connection,
    pg: psycopg.Connection,
    table: Table,
    *,
    schema: Place,
    target_schema: str,
    run_id: str,
    options: LoadOptions = LoadOptions(),
    progress: Callable[[int, int], None] | None = None,
) -> tuple[TablePlan, LoadResult]:
    """Stage ``table`` into ``schema`` (replacing a previous attempt of the same run)."""
    began = time.time()
    started = time.perf_counter()
    waits: list[float] = []  # seconds spent waiting for the streaming turn or the parents
    source = rowcopy.compiled_source(src)
    plan, guessed = planner.first_plan(src, table, options.rules, guess=source is not None)
    compiled = source if guessed else None  # a profiled plan goes straight to the Python stream
    counted = plan.source_rows  # the progress lines' total
    with pg.transaction():
        pg.execute(
            sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(ddl.qualified(schema, plan.name))
        )
        bookkeeping.forget_quarantine(pg, run_id, table.name)
        with _waited(options.streaming, waits):
            plan, stream = _stream_table(
                src, pg, plan, schema, progress and (lambda done: progress(done, counted)),
                options.rules, compiled=compiled,
            )  # fmt: skip
        if not options.defaults:
            plan = plan.without_defaults()
        warnings = [*plan.warnings, *([stream.note] if stream.note else [])]
        for codec in stream.codecs:
            warnings += codec.warnings()
        phase(table.name, KEYS)
        quarantined = bookkeeping.quarantine_rows(pg, run_id, table.name, stream.quarantine)
        keying = time.perf_counter()
        removed = constraints.retype_columns(pg, plan, schema, run_id)
        if options.generated:
            plan, generated_warnings = compute_generated(pg, plan, schema)
            warnings += generated_warnings
        warnings += constraints.set_defaults(pg, plan, schema)
        key_warnings, duplicates = constraints.add_keys_and_indexes(
            pg, plan, schema, run_id, indexes=options.indexes
        )
        keys_seconds = time.perf_counter() - keying
        removed += duplicates
        warnings += key_warnings
        immediate = tuple(fk for fk in table.foreign_keys if fk not in options.deferred)
        if immediate:
            phase(table.name, FOREIGN_KEYS)
        if immediate and options.before_foreign_keys is not None:
            waiting = time.perf_counter()
            options.before_foreign_keys()
            waits.append(time.perf_counter() - waiting)
        validating = time.perf_counter()
        fk_warnings, orphans = constraints.add_foreign_keys(
            pg, table, immediate, schema, target_schema,
            orphans=options.orphans, run_id=run_id, plan=plan, merge=options.merge,
        )  # fmt: skip
        foreign_keys_seconds = time.perf_counter() - validating
        warnings += fk_warnings
        removed += orphans
    seconds = time.perf_counter() - started - sum(waits)
    result = LoadResult(
        table.name, plan.name, plan.source_rows, stream.encoder.rows - removed.rows,
        quarantined + removed.rows, seconds, warnings,
        checksum=(stream.encoder.total - removed.hash_sum) % MOD,
        checksum_seconds=stream.encoder.seconds, keys_seconds=keys_seconds,
        foreign_keys_seconds=foreign_keys_seconds, window=(began, time.time()),
    )  # fmt: skip
    return plan, result

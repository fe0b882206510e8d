"""Load one table: profile, plan, stream rows through the converters into binary COPY.

Everything for a table happens in one PostgreSQL transaction in the run's staging schema:
the bare table, the COPY, the quarantine rows, then keys, indexes and foreign keys. A
failure rolls all of it back, so a table is either fully staged or absent.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.pq import Format

from consoleai_etl.core import bookkeeping, ddl
from consoleai_etl.core.catalog import ForeignKey, Table, sqlite_quote
from consoleai_etl.core.errors import ConversionError
from consoleai_etl.core.names import pg_identifier
from consoleai_etl.core.plan import ColumnPlan, TablePlan, converter_for, plan_table
from consoleai_etl.core.profile import profile_table
from consoleai_etl.core.verify import pg_orphans

BATCH_ROWS = 5_000
COPY_TYPES = {
    "bigint": "int8",
    "double": "float8",
    "numeric": "numeric",
    "text": "text",  # varchar(n) has the same binary format as text
    "bytea": "bytea",
    "boolean": "bool",
    "date": "date",
    "timestamp": "timestamp",
    "timestamptz": "timestamptz",
    "jsonb": "jsonb",
}


class JsonTextBinaryDumper(Dumper):
    """Send JSON *text* as jsonb (version byte + text): no Python re-serialisation, no loss."""

    format = Format.BINARY

    def dump(self, obj: str) -> bytes:
        return b"\x01" + obj.encode("utf-8")


@dataclass
class LoadResult:
    table: str
    target_table: str
    source_rows: int
    loaded_rows: int
    quarantined_rows: int
    seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.source_rows / self.seconds if self.seconds > 0 else 0.0


Checker = Callable[[object], object]


def _checker(column: ColumnPlan) -> Checker | None:
    """The per-value function for a column, or None when values can be sent untouched."""
    rejects_null = column.not_null and column.observed.get("null", 0) > 0
    if not column.needs_conversion() and not rejects_null:
        return None
    convert = converter_for(column.pg_type) if column.needs_conversion() else None

    def check(value: object) -> object:
        if value is None:
            if column.not_null:
                raise ConversionError("NULL in a NOT NULL column")
            return None
        return convert(value) if convert else value

    return check


def _select(table: Table) -> tuple[str, int]:
    """SELECT for the stream; tables without a primary key also read rowid as their key."""
    columns = ", ".join(sqlite_quote(c.name) for c in table.columns)
    if table.primary_key or table.without_rowid:
        return f"SELECT {columns} FROM {sqlite_quote(table.name)}", 0
    return f"SELECT rowid, {columns} FROM {sqlite_quote(table.name)}", 1


def _rows(src: sqlite3.Connection, query: str) -> Iterator[tuple]:
    cursor = src.execute(query)
    while batch := cursor.fetchmany(BATCH_ROWS):
        yield from batch


def _copy_rows(
    pg: psycopg.Connection,
    plan: TablePlan,
    schema: str,
    rows: Iterator[tuple],
    key_offset: int,
    quarantine: list[tuple],
    progress: Callable[[int], None] | None,
) -> int:
    checkers = [_checker(c) for c in plan.columns]
    names = [c.source for c in plan.columns]
    key_positions = [names.index(k) for k in plan.table.primary_key]
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        ddl.qualified(schema, plan.name),
        sql.SQL(", ").join(sql.Identifier(c.name) for c in plan.columns),
    )
    active = [(i, f) for i, f in enumerate(checkers) if f is not None]
    loaded = 0
    cursor = pg.cursor()
    cursor.adapters.register_dumper(None, _jsonb_dumper())
    with cursor.copy(copy_sql) as copy:
        copy.set_types([COPY_TYPES[c.pg_type.kind] for c in plan.columns])
        for raw in rows:
            values = list(raw[key_offset:]) if key_offset or active else raw
            try:
                for i, check in active:
                    values[i] = check(values[i])
            except ConversionError as exc:
                key = {"rowid": raw[0]} if key_offset else {names[k]: raw[k] for k in key_positions}
                row = dict(zip(names, raw[key_offset:], strict=True))
                quarantine.append((key, names[i], str(exc), row))
                continue
            copy.write_row(values)
            loaded += 1
            if progress and loaded % 100_000 == 0:
                progress(loaded)
    return loaded


def _jsonb_dumper() -> type[Dumper]:
    """JsonTextBinaryDumper bound to jsonb's oid (registered by oid only, for set_types)."""
    from psycopg.postgres import types

    return type("JsonbTextDumper", (JsonTextBinaryDumper,), {"oid": types["jsonb"].oid})


def load_table(
    src: sqlite3.Connection,
    pg: psycopg.Connection,
    table: Table,
    *,
    schema: str,
    target_schema: str,
    run_id: str,
    deferred: tuple[ForeignKey, ...] = (),
    progress: Callable[[int], None] | None = None,
) -> tuple[TablePlan, LoadResult]:
    """Stage ``table`` into ``schema`` (replacing a previous attempt of the same run).

    ``deferred`` FKs close a cycle between tables; they are created at promotion instead.
    """
    started = time.perf_counter()
    source_rows, profile = profile_table(src, table)
    plan = plan_table(table, profile, source_rows)
    warnings = list(plan.warnings)
    quarantine: list[tuple] = []
    with pg.transaction():
        pg.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        pg.execute(
            sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(ddl.qualified(schema, plan.name))
        )
        pg.execute(
            "DELETE FROM consoleai_etl.quarantine WHERE run_id = %s AND source_table = %s",
            (run_id, table.name),
        )
        pg.execute(ddl.create_table(plan, schema))
        query, key_offset = _select(table)
        loaded = _copy_rows(pg, plan, schema, _rows(src, query), key_offset, quarantine, progress)
        quarantined = bookkeeping.quarantine_rows(pg, run_id, table.name, quarantine)
        warnings += _add_keys_and_indexes(pg, plan, schema)
        immediate = tuple(fk for fk in table.foreign_keys if fk not in deferred)
        warnings += add_foreign_keys(pg, table, immediate, schema, target_schema)
    seconds = time.perf_counter() - started
    result = LoadResult(table.name, plan.name, source_rows, loaded, quarantined, seconds, warnings)
    return plan, result


def _attempt(pg: psycopg.Connection, statement: sql.Composable, what: str) -> list[str]:
    """Run one post-load statement in a savepoint; a failure becomes a warning, not an abort."""
    try:
        with pg.transaction():
            pg.execute(statement)
    except psycopg.Error as exc:
        return [f"{what} not created: {' '.join(str(exc).split())}"]
    return []


def _add_keys_and_indexes(pg: psycopg.Connection, plan: TablePlan, schema: str) -> list[str]:
    warnings = []
    if plan.table.primary_key:
        warnings += _attempt(pg, ddl.primary_key(plan, schema), "primary key")
    for index in plan.table.indexes:
        if index.origin != "pk" and not index.unsupported:
            warnings += _attempt(pg, ddl.index(plan, index, schema), f"index {index.name}")
    identity = ddl.set_identity(plan, schema)
    if identity is not None:
        pg.execute(identity)
    return warnings


def _table_schema(pg: psycopg.Connection, schemas: tuple[str, ...], table: str) -> str | None:
    """The first of ``schemas`` that holds ``table``."""
    for schema in schemas:
        found = pg.execute(
            "SELECT to_regclass(%s)", (ddl.qualified(schema, table).as_string(pg),)
        ).fetchone()
        if found and found[0] is not None:
            return schema
    return None


def add_foreign_keys(
    pg: psycopg.Connection,
    table: Table,
    fks: tuple[ForeignKey, ...],
    schema: str,
    target_schema: str,
) -> list[str]:
    """FKs to parents staged in this run (else already in the target); orphans -> NOT VALID."""
    warnings = []
    for fk in fks:
        label = f"foreign key {table.name}({', '.join(fk.columns)}) -> {fk.ref_table}"
        parent = pg_identifier(fk.ref_table)
        parent_schema = _table_schema(pg, (schema, target_schema), parent)
        if parent_schema is None or not fk.ref_columns:
            warnings.append(f"{label} not created: parent table {fk.ref_table} does not exist")
            continue
        parent_columns = tuple(pg_identifier(c) for c in fk.ref_columns)
        try:
            with pg.transaction():
                orphans, _ = pg_orphans(pg, table, fk, schema, parent_schema, parent_columns, 0)
        except psycopg.Error as exc:
            warnings.append(f"{label} not created: {' '.join(str(exc).split())}")
            continue
        statement = ddl.foreign_key(
            table, fk, schema, parent_schema, parent_columns, valid=orphans == 0
        )
        if orphans:
            warnings.append(f"{label} created NOT VALID: {orphans} orphan rows")
        warnings += _attempt(pg, statement, label)
    return warnings

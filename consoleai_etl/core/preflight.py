"""Checks run before any step: is the source a sound SQLite file, is the target usable, and
is no other migration writing to the same schema. Each failure is one line that names the
file, server or schema and says what to do, and nothing has been written yet."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg
from psycopg import sql

from consoleai_etl.core.catalog import Catalog, introspect
from consoleai_etl.core.errors import SourceError, TargetError
from consoleai_etl.core.names import pg_clashes, pg_identifier
from consoleai_etl.core.postgres import connect, redact
from consoleai_etl.core.source import open_source

SQLITE_HEADER = b"SQLite format 3\x00"
DATA_PROBLEMS = ("NULL value in ", "CHECK constraint failed in ")


def check_source(path: str | Path) -> None:
    """The source exists, is SQLite, passes ``quick_check``, is readable and has tables."""
    file = Path(path)
    if file.is_file():
        with file.open("rb") as handle:
            if handle.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                raise SourceError(
                    f"source {file} is not a SQLite database (no SQLite header): point "
                    "CONSOLEAI_SQLITE_PATH at the legacy .sqlite file"
                )
    with closing(open_source(file)) as conn:  # raises SourceError when missing/unreadable
        try:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
            tables = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%'"
            ).fetchone()[0]
            clash = name_clash(introspect(conn))
        except sqlite3.DatabaseError as exc:
            raise SourceError(
                f"source {file} is corrupt ({exc}): restore it from a backup or repair it "
                "with `sqlite3 FILE .recover`"
            ) from None
    # Constraint violations in the data (legacy schemas gain NOT NULL/CHECK after the rows
    # were written) are not corruption: those rows are quarantined by the load.
    problems = [p for p in problems if not p.startswith(DATA_PROBLEMS)]
    if problems not in ([], ["ok"]):
        raise SourceError(
            f"source {file} is corrupt (PRAGMA quick_check: {'; '.join(problems[:3])}): "
            "restore it from a backup or repair it with `sqlite3 FILE .recover`"
        )
    if tables == 0:
        raise SourceError(f"source {file} has no tables: nothing to migrate")
    if clash:
        raise SourceError(f"source {file}: {clash}: rename one of them in the source")


def name_clash(catalog: Catalog) -> str | None:
    """Source names PostgreSQL would hold under one name (a long name shortened to another
    table's or column's spelling, or "" next to ``EMPTY_NAME``), which would lose one."""
    if tables := pg_clashes(t.name for t in catalog.tables):
        return f"tables {_spelled(tables[0], 'PostgreSQL table')}"
    for table in catalog.tables:
        if columns := pg_clashes(c.name for c in table.columns):
            return f"table {table.name}: columns {_spelled(columns[0], 'column')}"
    return None


def _spelled(group: tuple[str, ...], kind: str) -> str:
    return f"{' and '.join(map(repr, group))} would be one {kind}, {pg_identifier(group[0])!r}"


def check_target(dsn: str, schema: str) -> None:
    """The server answers and this user may create the target schema (rolled back)."""
    with connect(dsn) as pg:
        try:
            with pg.transaction(force_rollback=True):
                pg.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
                pg.execute("CREATE SCHEMA IF NOT EXISTS consoleai_etl")
        except psycopg.Error as exc:
            raise TargetError(
                f"cannot create schema {schema} or consoleai_etl on {redact(dsn)}: "
                f"{' '.join(str(exc).split())} (grant CREATE on the database, or create the "
                "schemas beforehand)"
            ) from None


class RunLock:
    """A session advisory lock per target schema: one migration at a time writes there."""

    def __init__(self, dsn: str, schema: str) -> None:
        self.conn = connect(dsn, autocommit=True)
        key = f"consoleai_etl:{schema}"
        got = self.conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()
        if not got or not got[0]:
            holder = self.conn.execute(
                "SELECT a.pid, a.backend_start FROM pg_locks l JOIN pg_stat_activity a "
                "USING (pid) WHERE l.locktype = 'advisory' AND l.objid = "
                "hashtext(%s)::oid AND l.granted",
                (key,),
            ).fetchone()
            self.conn.close()
            who = (
                f" (server pid {holder[0]}, since {holder[1]:%Y-%m-%d %H:%M:%S})" if holder else ""
            )
            raise TargetError(
                f"another migration into schema {schema} is running{who}: wait for it to "
                "finish, or stop it, then run again"
            )

    def release(self) -> None:
        self.conn.close()  # closing the session releases the lock

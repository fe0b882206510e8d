"""Where a run stages its tables: inside the bookkeeping schema ``consoleai_etl``, as tables
``stage_<run>_<table>``, not in a schema of its own.

So a user who may create objects in ``consoleai_etl`` and in the target schema (schemas an
administrator created for it) needs no CREATE on the database. Index and identity-sequence
names are schema-wide in PostgreSQL, so they are staged under run-prefixed names too, and
promotion gives the table and them the names a direct load would have given. A run holds a
session advisory lock for its whole life (``lock``); a run's start-up drops the staged
tables of runs whose lock is free, that is of dead runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from consoleai_etl.core.plan.names import PG_MAX_IDENTIFIER_BYTES, pg_identifier
from consoleai_etl.core.target.bookkeeping import SCHEMA

PREFIX = "stage_"
# A run's staged relations: ``stage_`` + the run's token (letters and digits) + ``_``.
_STAGED = re.compile(r"stage_([A-Za-z0-9]+)_")
# Earlier versions staged each run in a schema of its own, locked under the schema's name.
OLD_SCHEMA_PREFIX = "consoleai_etl_stage_"
# The advisory lock key of a run's staging: the two-int form keeps it apart from the
# one-bigint keys of the run lock and the bootstrap lock.
_LOCK_KEY = "hashtext('consoleai_etl.staging'), hashtext(%s)"


@dataclass(frozen=True)
class Staging:
    """One run's staged relations in ``consoleai_etl``: their names, lock, drop, promotion."""

    run_id: str

    @property
    def token(self) -> str:
        """The run's 12 first letters or digits (a Dagster run id's hex digits)."""
        return re.sub(r"[^A-Za-z0-9]", "", self.run_id)[:12] or "run"

    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.token}_"

    def relname(self, name: str) -> str:
        """The staged name of the table, index or sequence a direct load names ``name``
        (shortened deterministically past 63 bytes)."""
        return pg_identifier(self.prefix + name)

    def qualified(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(self.relname(name)))

    def __str__(self) -> str:
        return f"{SCHEMA}.{self.prefix}*"

    def lock(self, conn: psycopg.Connection) -> bool:
        """Take the session lock that marks this run alive; False if a session holds it."""
        got = conn.execute(f"SELECT pg_try_advisory_lock({_LOCK_KEY})", (self.prefix,))
        return bool(got.fetchone()[0])

    def drop(self, conn: psycopg.Connection) -> list[str]:
        """Drop this run's staged tables (with their indexes and sequences)."""
        return _drop_tables(conn, _tables(conn).get(self.prefix, []))

    def drop_stale(self, conn: psycopg.Connection) -> list[str]:
        """Drop the staged tables (and schemas of earlier versions) of dead runs; a failed
        run keeps its own for inspection until then. Those whose lock some session holds
        belong to a run still going, maybe into another target schema, and are kept. Inside
        the caller's transaction: the lock taken here is held until it commits, so two runs
        starting at once never drop the same ones."""
        dropped = []
        for prefix, tables in _tables(conn).items():
            if prefix != self.prefix and _dead(conn, prefix):
                dropped += _drop_tables(conn, tables)
        old = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (OLD_SCHEMA_PREFIX,)
        ).fetchall()
        for (name,) in old:  # locked under their schema's name; one DROP each
            if _dead(conn, name):
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
                dropped.append(name)
        return dropped

    def promote(
        self, pg: psycopg.Connection, name: str, target: str, indexes: Iterable[str]
    ) -> None:
        """Move the staged table ``name`` into ``target`` under ``name``, with its
        ``indexes`` (their direct-load names; primary key and unique constraints included)
        and identity sequence renamed to the names a direct load would have given. In the
        caller's transaction; no data is copied. Two round trips: the identity sequences'
        names, then every statement at once."""
        staged = self.qualified(name).as_string(pg)
        sequences = pg.execute(
            "SELECT a.attname, s.relname FROM pg_attribute a JOIN pg_class s "
            "ON s.oid = pg_get_serial_sequence(%s, a.attname)::regclass "
            "WHERE a.attrelid = %s::regclass AND a.attidentity <> ''",
            (staged, staged),
        ).fetchall()
        moved = sql.Identifier(target, self.relname(name))
        statements = [
            sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                self.qualified(name), sql.Identifier(target)
            ),
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(moved, sql.Identifier(name)),
            *(
                sql.SQL("ALTER INDEX IF EXISTS {} RENAME TO {}").format(
                    sql.Identifier(target, self.relname(index)), sql.Identifier(index)
                )
                for index in indexes
            ),
            *(
                sql.SQL("ALTER SEQUENCE {} RENAME TO {}").format(
                    sql.Identifier(target, sequence),
                    sql.Identifier(object_name(name, column, "seq")),
                )
                for column, sequence in sequences
            ),
        ]
        pg.execute(sql.SQL("; ").join(statements))


def object_name(name1: str, name2: str, label: str) -> str:
    """The name PostgreSQL gives an implicit object (``makeObjectName``: a table's identity
    sequence is ``<table>_<column>_seq``): within 63 bytes, the longer of the two names
    shortened first, a byte at a time, never inside a character."""
    first, second = name1.encode("utf-8"), name2.encode("utf-8")
    room = PG_MAX_IDENTIFIER_BYTES - len(label.encode("utf-8")) - 2
    keep1, keep2 = len(first), len(second)
    while keep1 + keep2 > room:
        if keep1 > keep2:
            keep1 -= 1
        else:
            keep2 -= 1
    clip1 = first[:keep1].decode("utf-8", errors="ignore")
    clip2 = second[:keep2].decode("utf-8", errors="ignore")
    return f"{clip1}_{clip2}_{label}"


def _tables(conn: psycopg.Connection) -> dict[str, list[str]]:
    """The staged tables in ``consoleai_etl``, by their run's prefix."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND starts_with(c.relname, %s) "
        "ORDER BY c.relname",
        (SCHEMA, PREFIX),
    ).fetchall()
    found: dict[str, list[str]] = {}
    for (name,) in rows:
        if match := _STAGED.match(name):
            found.setdefault(match.group(0), []).append(name)
    return found


def _dead(conn: psycopg.Connection, key: str) -> bool:
    """No session holds the run's lock (taken here until the transaction ends)."""
    got = conn.execute(f"SELECT pg_try_advisory_xact_lock({_LOCK_KEY})", (key,))
    return bool(got.fetchone()[0])


def _drop_tables(conn: psycopg.Connection, tables: list[str]) -> list[str]:
    if tables:
        conn.execute(
            sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(
                sql.SQL(", ").join(sql.Identifier(SCHEMA, t) for t in tables)
            )
        )
    return tables

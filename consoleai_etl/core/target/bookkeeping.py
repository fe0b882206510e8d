"""The ``consoleai_etl`` bookkeeping schema: quarantine, run history, owned relations. All
SQL on its bookkeeping tables lives here (runs stage their tables in it too:
``target.staging``)."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Sequence

import psycopg
from psycopg import sql

from consoleai_etl.core.encode.convert import REFUSAL_CLASS
from consoleai_etl.core.run.report import MigrationReport
from consoleai_etl.core.target.postgres import create_schema

SCHEMA = "consoleai_etl"

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS consoleai_etl.quarantine (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id text NOT NULL,
    source_table text NOT NULL,
    source_key jsonb,
    column_name text,
    reason text NOT NULL,
    row_data jsonb NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS quarantine_run_table_idx
    ON consoleai_etl.quarantine (run_id, source_table);
CREATE TABLE IF NOT EXISTS consoleai_etl.runs (
    run_id text PRIMARY KEY,
    finished_at timestamptz NOT NULL DEFAULT now(),
    status text NOT NULL,
    dry_run boolean NOT NULL,
    promoted boolean NOT NULL,
    source_path text NOT NULL,
    target_schema text NOT NULL,
    source_rows bigint NOT NULL,
    loaded_rows bigint NOT NULL,
    quarantined_rows bigint NOT NULL,
    report jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS consoleai_etl.owned_relations (
    target_schema text NOT NULL,
    name text NOT NULL,
    relid oid NOT NULL,
    run_id text NOT NULL,
    promoted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target_schema, name)
);
CREATE TABLE IF NOT EXISTS consoleai_etl.merged_tables (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target_schema text NOT NULL,
    target_table text NOT NULL,
    run_id text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    rows bigint NOT NULL,
    hash_sum numeric NOT NULL,
    UNIQUE (target_schema, target_table)
);
CREATE TABLE IF NOT EXISTS consoleai_etl.merged_rows (
    table_id integer NOT NULL,
    row_key bytea NOT NULL,
    row_hash bigint NOT NULL,
    PRIMARY KEY (table_id, row_key)
);
CREATE TABLE IF NOT EXISTS consoleai_etl.application_changes (
    run_id text NOT NULL,
    target_schema text NOT NULL,
    target_table text NOT NULL,
    row_key bytea NOT NULL,
    key jsonb NOT NULL,
    conflict boolean NOT NULL,
    kept boolean NOT NULL,
    PRIMARY KEY (run_id, target_schema, target_table, row_key)
);
"""


_READY = (
    "SELECT to_regclass('consoleai_etl.runs') IS NOT NULL "
    "AND to_regclass('consoleai_etl.quarantine_run_table_idx') IS NOT NULL "
    "AND to_regclass('consoleai_etl.owned_relations') IS NOT NULL "
    "AND to_regclass('consoleai_etl.merged_rows') IS NOT NULL "
    "AND to_regclass('consoleai_etl.application_changes') IS NOT NULL"
)


def ensure_bookkeeping(conn: psycopg.Connection) -> None:
    """Create the bookkeeping schema once; the advisory lock serialises concurrent first runs.

    Once it exists, nothing is run: ``CREATE INDEX IF NOT EXISTS`` locks the quarantine
    table before it looks for the index, so it would wait for every table being staged
    (each writes the quarantine in its own long transaction)."""
    with conn.transaction():
        if conn.execute(_READY).fetchone()[0]:
            return
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('consoleai_etl.bootstrap'))")
        create_schema(conn, SCHEMA)
        conn.execute(_BOOTSTRAP)


def jsonable(value: object) -> object:
    """A JSON-safe form of a source value; bytes and un-storable text become base64 objects."""
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, str) and "\x00" in value:
        return {"base64": base64.b64encode(value.encode("utf-8")).decode("ascii")}
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    return value


def quarantine_rows(
    conn: psycopg.Connection, run_id: str, table: str, entries: Iterable[tuple]
) -> int:
    """Write (source_key, column, reason, row) entries; returns how many were written."""
    count = 0
    with conn.cursor().copy(
        "COPY consoleai_etl.quarantine "
        "(run_id, source_table, source_key, column_name, reason, row_data) FROM STDIN"
    ) as copy:
        for key, column, reason, row in entries:
            copy.write_row(
                (
                    run_id,
                    table,
                    json.dumps({k: jsonable(v) for k, v in key.items()}),
                    column,
                    reason,
                    json.dumps({k: jsonable(v) for k, v in row.items()}),
                )
            )
            count += 1
    return count


def forget_quarantine(conn: psycopg.Connection, run_id: str, table: str) -> None:
    """Remove a run's quarantine rows of ``table``: the table is being staged again."""
    conn.execute(
        "DELETE FROM consoleai_etl.quarantine WHERE run_id = %s AND source_table = %s",
        (run_id, table),
    )


def quarantine_moved_rows(
    run_id: str, table: str, key: sql.Composable, column: str, reason: str, moved: str
) -> sql.Composed:
    """The data-modifying CTE body that writes the rows of the CTE ``moved`` (rows deleted
    from a staged table) into the quarantine, each with its ``key`` (an SQL expression over
    ``moved``), the column and the reason, and the whole row as ``row_data``."""
    return sql.SQL(
        "INSERT INTO consoleai_etl.quarantine "
        "(run_id, source_table, source_key, column_name, reason, row_data) "
        "SELECT {run}, {table}, {key}, {column}, {reason}, to_jsonb({moved}) FROM {moved}"
    ).format(
        run=sql.Literal(run_id),
        table=sql.Literal(table),
        key=key,
        column=sql.Literal(column),
        reason=sql.Literal(reason),
        moved=sql.Identifier(moved),
    )


def quarantined_keys(conn: psycopg.Connection, run_id: str, table: str) -> list[object]:
    """The ``source_key`` of every row of ``table`` a run quarantined."""
    rows = conn.execute(
        "SELECT source_key FROM consoleai_etl.quarantine WHERE run_id = %s AND source_table = %s",
        (run_id, table),
    ).fetchall()
    return [key for (key,) in rows]


def quarantine_sample(
    conn: psycopg.Connection, run_id: str, table: str, limit: int = 20
) -> list[dict[str, object]]:
    """The first quarantined rows of a table in a run: key, column and reason."""
    rows = conn.execute(
        "SELECT source_key, column_name, reason FROM consoleai_etl.quarantine "
        "WHERE run_id = %s AND source_table = %s ORDER BY id LIMIT %s",
        (run_id, table, limit),
    ).fetchall()
    return [{"key": key, "column": column, "reason": reason} for key, column, reason in rows]


def quarantine_reasons(
    conn: psycopg.Connection, run_id: str, table: str
) -> list[dict[str, object]]:
    """Every row of a table a run quarantined, counted per column and reason class: a
    refused value's reason names the value, its class (``REFUSAL_CLASS``) only the target
    type; the other reasons (duplicate key, orphan, out of range) are classes already.
    Most rows first."""
    pattern, replacement = REFUSAL_CLASS
    rows = conn.execute(
        "SELECT column_name, regexp_replace(reason, %s, %s), count(*) "
        "FROM consoleai_etl.quarantine WHERE run_id = %s AND source_table = %s "
        "GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
        (pattern, replacement, run_id, table),
    ).fetchall()
    return [{"column": column, "reason": reason, "rows": int(n)} for column, reason, n in rows]


def record_run(conn: psycopg.Connection, report: MigrationReport) -> None:
    """The run's row of ``consoleai_etl.runs`` (updated when the run records it again)."""
    totals = report.totals
    conn.execute(
        "INSERT INTO consoleai_etl.runs (run_id, status, dry_run, promoted, source_path, "
        "target_schema, source_rows, loaded_rows, quarantined_rows, report) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (run_id) DO UPDATE SET finished_at = now(), status = EXCLUDED.status, "
        "promoted = EXCLUDED.promoted, report = EXCLUDED.report",
        (
            report.run_id,
            report.status,
            report.dry_run,
            report.promoted,
            report.source_path,
            report.target_schema,
            totals["source_rows"],
            totals["loaded_rows"],
            totals["quarantined_rows"],
            report.to_json(),
        ),
    )


def recorded_report(conn: psycopg.Connection, run_ids: Sequence[str]) -> dict | None:
    """The report recorded for the first of ``run_ids`` that has one (a run, then the runs
    it re-executes, nearest first), or None (also before any run created the schema)."""
    if not conn.execute("SELECT to_regclass('consoleai_etl.runs') IS NOT NULL").fetchone()[0]:
        return None
    row = conn.execute(
        "SELECT report FROM consoleai_etl.runs WHERE run_id = ANY(%s) "
        "ORDER BY array_position(%s, run_id) LIMIT 1",
        (list(run_ids), list(run_ids)),
    ).fetchone()
    return row[0] if row else None


def previous_report(
    conn: psycopg.Connection, target_schema: str, run_id: str
) -> dict[str, object] | None:
    """The report of the latest promoted run into ``target_schema`` other than ``run_id``."""
    row = conn.execute(
        "SELECT report FROM consoleai_etl.runs WHERE promoted AND target_schema = %s "
        "AND run_id <> %s ORDER BY finished_at DESC LIMIT 1",
        (target_schema, run_id),
    ).fetchone()
    return row[0] if row else None


def last_promoted_run(conn: psycopg.Connection, target_schema: str) -> str | None:
    row = conn.execute(
        "SELECT run_id FROM consoleai_etl.runs WHERE promoted AND target_schema = %s "
        "ORDER BY finished_at DESC LIMIT 1",
        (target_schema,),
    ).fetchone()
    return row[0] if row else None


def owned_relations(conn: psycopg.Connection, target_schema: str) -> dict[str, int]:
    """Name -> oid of the tables and views runs of this tool promoted into ``target_schema``.

    The oid is what proves ownership: a relation dropped by someone and created again under
    the same name is a new object, not ours. Empty before the first run created the schema
    (preflight reads this before anything is written)."""
    if conn.execute("SELECT to_regclass('consoleai_etl.owned_relations')").fetchone()[0] is None:
        return {}
    rows = conn.execute(
        "SELECT name, relid FROM consoleai_etl.owned_relations WHERE target_schema = %s",
        (target_schema,),
    ).fetchall()
    return {name: int(relid) for name, relid in rows}


def record_owned(
    conn: psycopg.Connection, target_schema: str, run_id: str, names: Iterable[str]
) -> None:
    """Own exactly those of ``names`` that exist in ``target_schema`` now (the promoted
    tables and the views created). Runs in the promotion's transaction, so a promotion that
    rolls back leaves the earlier record as it was."""
    names = list(names)
    conn.execute(
        "DELETE FROM consoleai_etl.owned_relations WHERE target_schema = %s AND name = ANY(%s)",
        (target_schema, names),
    )
    conn.execute(
        "INSERT INTO consoleai_etl.owned_relations (target_schema, name, relid, run_id) "
        "SELECT n.nspname, c.relname, c.oid, %s FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p', 'v')",
        (run_id, target_schema, names),
    )


# What merges wrote: per merged target table (``merged_tables``, one id per schema and
# table), per key, the hash of the row as the last merge took it from the source
# (``merged_rows``). The next merge tells from it which side changed a row that differs
# (core/target/merge.py). A first merge records every row it brings, so the rows are kept
# narrow: the table's id rather than its names, no foreign key (a check per row), the key
# as its binary form (core/target/merge.py ``_row_key``), which an index takes in about
# half the time of its text when keys come in order. Each table also keeps the count and
# sum of its rows' hashes, so a merge whose rows are all recorded already (a re-merge of an
# unchanged source) finds it from those two numbers, without joining every row.


def merged_table(conn: psycopg.Connection, target_schema: str, target_table: str) -> int | None:
    """The id under which merges recorded rows of ``target_schema.target_table``, or None
    when none did."""
    row = conn.execute(
        "SELECT id FROM consoleai_etl.merged_tables WHERE target_schema = %s AND target_table = %s",
        (target_schema, target_table),
    ).fetchone()
    return row[0] if row else None


def recorded_hash(table_id: int | None, key: sql.Composable) -> sql.Composable:
    """SQL: the hash recorded for the row whose key is ``key`` (an expression of its binary
    form), NULL when no merge recorded it. One index probe per row it is evaluated for."""
    if table_id is None:
        return sql.SQL("NULL::bigint")
    return sql.SQL(
        "(SELECT row_hash FROM consoleai_etl.merged_rows WHERE table_id = {} AND row_key = {})"
    ).format(sql.Literal(table_id), key)


def record_merged(
    conn: psycopg.Connection,
    target_schema: str,
    target_table: str,
    run_id: str,
    rows: sql.Composable,
) -> int:
    """Record ``rows`` (a SELECT of ``row_key`` bytea and ``row_hash`` bigint: every row
    the merge took from the source) as merged into the table by ``run_id``; the number of
    rows whose record was new or changed. In the merge's transaction, so a merge that
    rolls back (or a dry run, which does not call this) records nothing. A table's first
    record is a plain INSERT; later ones write only the keys whose hash changed, and
    nothing at all when ``rows`` have the count and hash sum of the table's records.
    Records of keys the source no longer has are kept (only that sum then differs)."""
    table = conn.execute(
        "SELECT id, rows, hash_sum FROM consoleai_etl.merged_tables "
        "WHERE target_schema = %s AND target_table = %s",
        (target_schema, target_table),
    ).fetchone()
    if table is None:
        table_id = conn.execute(
            "INSERT INTO consoleai_etl.merged_tables (target_schema, target_table, run_id, "
            "rows, hash_sum) VALUES (%s, %s, %s, 0, 0) RETURNING id",
            (target_schema, target_table, run_id),
        ).fetchone()[0]
        written = sql.SQL(
            "INSERT INTO consoleai_etl.merged_rows (table_id, row_key, row_hash) "
            "SELECT {id}, n.row_key, n.row_hash FROM ({rows}) n RETURNING row_hash"
        ).format(id=sql.Literal(table_id), rows=rows)
    else:
        table_id, *recorded = table
        staged = conn.execute(
            sql.SQL("SELECT count(*), coalesce(sum(row_hash), 0) FROM ({}) n").format(rows)
        ).fetchone()
        if list(staged) == recorded:
            return 0
        written = sql.SQL(
            "INSERT INTO consoleai_etl.merged_rows AS r (table_id, row_key, row_hash) "
            "SELECT {id}, n.row_key, n.row_hash FROM ({rows}) n WHERE NOT EXISTS ("
            "SELECT 1 FROM consoleai_etl.merged_rows o WHERE o.table_id = {id} "
            "AND o.row_key = n.row_key AND o.row_hash = n.row_hash) "
            "ON CONFLICT (table_id, row_key) DO UPDATE SET row_hash = EXCLUDED.row_hash "
            "RETURNING row_hash"
        ).format(id=sql.Literal(table_id), rows=rows)
    count, total = conn.execute(
        sql.SQL(
            "WITH written AS ({}) SELECT count(*), coalesce(sum(row_hash), 0) FROM written"
        ).format(written)
    ).fetchone()
    if table is None:  # every record is one just written
        conn.execute(
            "UPDATE consoleai_etl.merged_tables SET rows = %s, hash_sum = %s WHERE id = %s",
            (count, total, table_id),
        )
    elif count:  # some replaced a hash: sum them all again
        conn.execute(
            "UPDATE consoleai_etl.merged_tables SET run_id = %(run)s, recorded_at = now(), "
            "(rows, hash_sum) = (SELECT count(*), coalesce(sum(row_hash), 0) "
            "FROM consoleai_etl.merged_rows WHERE table_id = %(id)s) WHERE id = %(id)s",
            {"run": run_id, "id": table_id},
        )
    return count


# The rows a merge found changed by the application since the last merge (``merge.py``),
# per run, as the quarantine keeps refused rows: every one, with its key, whether the
# source changed it too (a conflict) and whether the target's row was kept. The merge
# leaves out and proves apart the rows kept; the report names the first conflicts.


def record_application_changes(
    conn: psycopg.Connection,
    run_id: str,
    target_schema: str,
    target_table: str,
    rows: sql.Composable,
    limit: int = 20,
) -> tuple[int, int, list[object]]:
    """Record ``rows`` (a SELECT of ``row_key`` bytea, ``key`` jsonb, ``conflict`` and
    ``kept`` booleans) for the run's merge into the table: (rows the application alone
    changed, conflicts, the first ``limit`` conflicting keys in key order)."""
    where = (run_id, target_schema, target_table)
    conn.execute(
        sql.SQL(
            "INSERT INTO consoleai_etl.application_changes (run_id, target_schema, "
            "target_table, row_key, key, conflict, kept) "
            "SELECT %s, %s, %s, n.row_key, n.key, n.conflict, n.kept FROM ({}) n"
        ).format(rows),
        where,
    )
    application, conflicts = conn.execute(
        "SELECT count(*) FILTER (WHERE NOT conflict), count(*) FILTER (WHERE conflict) "
        "FROM consoleai_etl.application_changes "
        "WHERE run_id = %s AND target_schema = %s AND target_table = %s",
        where,
    ).fetchone()
    sample = conn.execute(
        "SELECT key FROM consoleai_etl.application_changes WHERE run_id = %s "
        "AND target_schema = %s AND target_table = %s AND conflict ORDER BY key LIMIT %s",
        (*where, limit),
    ).fetchall()
    return application, conflicts, [key for (key,) in sample]


def kept_by_merge(
    run_id: str, target_schema: str, target_table: str, key: sql.Composable
) -> sql.Composable:
    """SQL: the run's merge into the table keeps the target's row whose key is ``key`` (an
    expression of its binary form)."""
    return sql.SQL(
        "EXISTS (SELECT 1 FROM consoleai_etl.application_changes k WHERE k.run_id = {} "
        "AND k.target_schema = {} AND k.target_table = {} AND k.kept AND k.row_key = {})"
    ).format(sql.Literal(run_id), sql.Literal(target_schema), sql.Literal(target_table), key)

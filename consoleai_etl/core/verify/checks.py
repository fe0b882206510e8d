"""Consistency checks of one table: SQLite source against a PostgreSQL schema.

Which checks exist, what each proves and how severe its failure is: ``registry``. Each
check returns a ``CheckReport`` with numbers in its metadata; a check whose own code
fails returns ``passed=False`` with the error, so one broken check never hides the others.
Checks need only the catalog (not the load's plan), so they can re-verify a target that was
loaded earlier or by another tool.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from consoleai_etl.core.plan.names import pg_column, pg_identifier
from consoleai_etl.core.plan.table_plan import TablePlan
from consoleai_etl.core.run.report import CheckReport
from consoleai_etl.core.source.catalog import ForeignKey, Table, sqlite_quote
from consoleai_etl.core.target.ddl import Place, qualified

if TYPE_CHECKING:
    from consoleai_etl.core.plan.merge_plan import MergePlan

SAMPLE_KEYS = 5


def _cols(names: tuple[str, ...]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(pg_column(n)) for n in names)


def target_row_count(pg: psycopg.Connection, schema: Place, table: Table) -> int:
    query = sql.SQL("SELECT count(*) FROM {}").format(qualified(schema, pg_identifier(table.name)))
    return int(pg.execute(query).fetchone()[0])


def check_row_count(source_rows: int, target_rows: int, quarantined: int) -> CheckReport:
    missing = source_rows - target_rows - quarantined
    passed = missing == 0
    description = (
        f"{source_rows} source rows = {target_rows} in target + {quarantined} quarantined"
        if passed
        else f"{source_rows} source rows but {target_rows} in target + {quarantined} "
        f"quarantined: {abs(missing)} rows {'missing' if missing > 0 else 'extra'}"
    )
    return CheckReport(
        "row_count",
        passed,
        description,
        {
            "source_rows": source_rows,
            "target_rows": target_rows,
            "quarantined_rows": quarantined,
            "difference": missing,
        },
    )


_KEY_COLUMNS = (
    "ARRAY(SELECT a.attname::text FROM unnest({keys}) WITH ORDINALITY k(num, i) "
    "JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = k.num ORDER BY k.i)"
)


def enforced_by(
    pg: psycopg.Connection,
    table: sql.Composable,
    kind: str,
    columns: tuple[str, ...],
    parent: tuple[sql.Composable, tuple[str, ...]] | None = None,
) -> str | None:
    """The name of a validated constraint of ``kind`` ('p' primary key, 'f' foreign key to
    ``parent`` (table, columns)) on exactly these PostgreSQL ``columns``, or None. Such a
    constraint means PostgreSQL itself guarantees what a scan would search for (no NULL or
    duplicate key, no orphan), so the check can cite it instead of reading the table."""
    parent_table, parent_columns = parent or (None, ())
    rows = pg.execute(
        sql.SQL(
            "SELECT conname::text, {own}, confrelid = coalesce(to_regclass({parent}), 0), {ref} "
            "FROM pg_constraint WHERE conrelid = to_regclass({table}) AND contype = {kind} "
            "AND convalidated"
        ).format(
            own=sql.SQL(_KEY_COLUMNS.format(keys="conkey", rel="conrelid")),
            ref=sql.SQL(_KEY_COLUMNS.format(keys="confkey", rel="confrelid")),
            parent=sql.Literal(parent_table.as_string(pg) if parent_table else None),
            table=sql.Literal(table.as_string(pg)),
            kind=sql.Literal(kind),
        )
    ).fetchall()
    for name, own, same_parent, ref in rows:
        if own != list(columns):
            continue
        if parent is None or (same_parent and ref == list(parent_columns)):
            return name
    return None


def check_primary_key(pg: psycopg.Connection, schema: Place, table: Table) -> CheckReport:
    target = qualified(schema, pg_identifier(table.name))
    key = ", ".join(table.primary_key)
    constraint = enforced_by(pg, target, "p", tuple(map(pg_column, table.primary_key)))
    if constraint is not None:
        return CheckReport(
            "primary_key",
            True,
            f"primary key ({key}) is non-NULL and unique: enforced by constraint {constraint}",
            {"null_keys": 0, "duplicate_keys": 0, "sample_duplicates": [],
             "enforced_by": constraint},
        )  # fmt: skip
    any_null = sql.SQL(" OR ").join(
        sql.SQL("{} IS NULL").format(sql.Identifier(pg_identifier(c))) for c in table.primary_key
    )
    nulls = pg.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE {}").format(target, any_null)
    ).fetchone()[0]
    duplicates = pg.execute(
        sql.SQL(
            "SELECT {cols}, count(*) FROM {t} GROUP BY {cols} HAVING count(*) > 1 ORDER BY {cols}"
        ).format(cols=_cols(table.primary_key), t=target)
    ).fetchall()
    passed = nulls == 0 and not duplicates
    description = (
        f"primary key ({key}) is non-NULL and unique"
        if passed
        else f"primary key ({key}): {nulls} NULL keys, {len(duplicates)} duplicated keys"
    )
    return CheckReport(
        "primary_key",
        passed,
        description,
        {
            "null_keys": int(nulls),
            "duplicate_keys": len(duplicates),
            "sample_duplicates": [list(map(str, row[:-1])) for row in duplicates[:SAMPLE_KEYS]],
        },
    )


def check_not_null(pg: psycopg.Connection, schema: Place, table: Table) -> CheckReport:
    """Every column NOT NULL in the source is NOT NULL in the target and holds no NULL."""
    required = [c.name for c in table.columns if c.not_null or c.pk_position]
    rows = pg.execute(
        "SELECT attname, attnotnull FROM pg_attribute "
        "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        (qualified(schema, pg_identifier(table.name)).as_string(pg),),
    ).fetchall()
    not_null = dict(rows)
    missing_constraint = [c for c in required if not not_null.get(pg_column(c), False)]
    nulls: dict[str, int] = {}
    for column in missing_constraint:
        if pg_column(column) in not_null:
            count = pg.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL").format(
                    qualified(schema, pg_identifier(table.name)),
                    sql.Identifier(pg_column(column)),
                )
            ).fetchone()[0]
            nulls[column] = int(count)
    passed = not missing_constraint
    description = (
        f"{len(required)} NOT NULL columns enforced in the target"
        if passed
        else "NOT NULL missing in target on " + ", ".join(missing_constraint)
    )
    return CheckReport(
        "not_null",
        passed,
        description,
        {"not_null_columns": len(required), "missing": missing_constraint, "null_values": nulls},
    )


@dataclass(frozen=True)
class Parents:
    """Where a foreign key's parent rows are: one or more tables, each with the columns the
    key references. A child row is an orphan when NO table holds its parent, so merge mode
    can count a parent that is staged OR already in the application's table (``parents``)."""

    tables: tuple[tuple[sql.Composable, tuple[str, ...]], ...]

    def missing(self, child: Sequence[sql.Composable]) -> sql.Composed:
        """WHERE condition, true when the key ``child`` (expressions of the child row) is set
        in full and matches no parent row (a NULL part is no reference: MATCH SIMPLE)."""
        anywhere = [
            sql.SQL("NOT EXISTS (SELECT 1 FROM {} p WHERE {})").format(
                table,
                sql.SQL(" AND ").join(
                    sql.SQL("p.{} = {}").format(sql.Identifier(p), c)
                    for p, c in zip(columns, child, strict=True)
                ),
            )
            for table, columns in self.tables
        ]
        return sql.SQL(" AND ").join(
            [*(sql.SQL("{} IS NOT NULL").format(c) for c in child), *anywhere]
        )


def parents(
    pg: psycopg.Connection,
    fk: ForeignKey,
    schemas: tuple[Place, ...],
    merge: MergePlan | None = None,
) -> Parents | None:
    """The parent rows of ``fk`` (None: its parent table exists nowhere). Without ``merge``
    (replace mode) they are the first copy of the parent table in ``schemas``: a staged copy
    replaces the target's. In merge mode the staged copy (in ``schemas``, the target schema
    aside) adds to the application's table, under the names the merge maps: a parent row
    counts if it is staged or the application already has it, so neither a row pointing at
    the application's rows nor one whose parent a later table of a cycle stages is a false
    orphan. The one place that says where parents are: the staging's keys, the checks and
    the re-verification of a merge all ask it."""
    if not fk.ref_columns:
        return None
    staged = (pg_identifier(fk.ref_table), tuple(map(pg_column, fk.ref_columns)))
    if merge is None:
        schema = table_schema(pg, schemas, staged[0])
        return None if schema is None else Parents(((qualified(schema, staged[0]), staged[1]),))
    found = [
        (qualified(schema, staged[0]), staged[1])
        for schema in schemas
        if schema != merge.schema and table_schema(pg, (schema,), staged[0])
    ]
    into = merge.tables.get(fk.ref_table)
    if into is not None:
        by_source = {c.source: c.target for c in into.columns}
        if set(fk.ref_columns) <= set(by_source):
            target = sql.Identifier(into.target.schema, into.target.name)
            found.append((target, tuple(by_source[c] for c in fk.ref_columns)))
    elif table_schema(pg, (merge.schema,), staged[0]):
        found.append((qualified(merge.schema, staged[0]), staged[1]))
    return Parents(tuple(found)) if found else None


def orphan_condition(fk: ForeignKey, parents: Parents) -> sql.Composed:
    """WHERE condition (child alias ``c``) true for rows whose FK matches no parent row."""
    return parents.missing(
        [sql.SQL("c.{}").format(sql.Identifier(pg_column(c))) for c in fk.columns]
    )


def pg_orphans(
    pg: psycopg.Connection,
    table: Table,
    fk: ForeignKey,
    schema: Place,
    parents: Parents,
    limit: int,
) -> tuple[int, list[list[str]]]:
    """(orphan count, up to ``limit`` orphan key tuples) of ``fk`` in PostgreSQL."""
    condition = orphan_condition(fk, parents)
    source = qualified(schema, pg_identifier(table.name))
    count = pg.execute(
        sql.SQL("SELECT count(*) FROM {} c WHERE {}").format(source, condition)
    ).fetchone()[0]
    if not count:  # a sample query would scan the whole table again for nothing
        return 0, []
    sample = pg.execute(
        sql.SQL("SELECT {} FROM {} c WHERE {} LIMIT {}").format(
            sql.SQL(", ").join(
                sql.SQL("c.{}").format(sql.Identifier(pg_column(c))) for c in fk.columns
            ),
            source,
            condition,
            sql.Literal(limit),
        )
    ).fetchall()
    return int(count), [list(map(str, row)) for row in sample]


def sqlite_orphans(
    src: sqlite3.Connection, table: Table, fk: ForeignKey, limit: int
) -> tuple[int, list[list[str]]]:
    """The same orphan search in the SQLite source (legacy data often has its own orphans)."""
    child = [f"c.{sqlite_quote(c)}" for c in fk.columns]
    condition = " AND ".join(f"{c} IS NOT NULL" for c in child)
    if fk.ref_columns:
        match = " AND ".join(
            f"p.{sqlite_quote(p)} = {c}" for p, c in zip(fk.ref_columns, child, strict=True)
        )
        condition += f" AND NOT EXISTS (SELECT 1 FROM {sqlite_quote(fk.ref_table)} p WHERE {match})"
    source = f"{sqlite_quote(table.name)} c"
    count = src.execute(f"SELECT count(*) FROM {source} WHERE {condition}").fetchone()[0]
    if not count:
        return 0, []
    sample = src.execute(
        f"SELECT {', '.join(child)} FROM {source} WHERE {condition} LIMIT {int(limit)}"
    ).fetchall()
    return int(count), [list(map(str, row)) for row in sample]


def table_schema(pg: psycopg.Connection, schemas: tuple[Place, ...], table: str) -> Place | None:
    """The first of ``schemas`` that holds ``table`` (a PostgreSQL name)."""
    for schema in schemas:
        found = pg.execute(
            "SELECT to_regclass(%s)", (qualified(schema, table).as_string(pg),)
        ).fetchone()
        if found and found[0] is not None:
            return schema
    return None


def check_foreign_keys(
    src: sqlite3.Connection,
    pg: psycopg.Connection,
    table: Table,
    schema: Place,
    parent_schemas: tuple[Place, ...],
    orphans: str = "quarantine",
    quarantined: int = 0,
    merge: MergePlan | None = None,
) -> CheckReport:
    """Orphans per FK in the target, with the source's own orphans reported beside them.

    Parents are where ``parents`` says (``parent_schemas``; in merge mode, ``merge``: the
    staged rows and the application's). Under ``orphans: keep`` orphans in
    the target are expected and listed without failing; an FK whose parent table exists
    nowhere was never created and is listed as skipped. The source is searched (a scan of
    the whole child table) only when there is something to explain: the target does not
    enforce the FK, or some of the table's rows (``quarantined``) were set aside.
    """
    details, failing, kept = [], [], 0
    for fk in table.foreign_keys:
        label = f"({', '.join(fk.columns)}) -> {fk.ref_table}"
        found = parents(pg, fk, parent_schemas, merge)
        if found is None:
            details.append({"foreign_key": label, "skipped": "parent table does not exist"})
            continue
        child = qualified(schema, pg_identifier(table.name))
        # A validated constraint to the first parent table holds every row's parent there.
        constraint = enforced_by(pg, child, "f", tuple(map(pg_column, fk.columns)), found.tables[0])
        source_count: int | None = None  # not searched: every row is in, all validated
        source_sample: list[list[str]] = []
        if not constraint or quarantined:
            try:
                source_count, source_sample = sqlite_orphans(src, table, fk, SAMPLE_KEYS)
            except sqlite3.Error as exc:
                source_count, source_sample = -1, [[f"source check failed: {exc}"]]
        try:
            with pg.transaction():
                count, sample = (
                    (0, []) if constraint else pg_orphans(pg, table, fk, schema, found, SAMPLE_KEYS)
                )
        except psycopg.Error as exc:
            count, sample = -1, [[" ".join(str(exc).split())]]
        if count > 0 and orphans == "keep":
            kept += count
        elif count != 0:
            failing.append(
                f"{label}: {'check failed' if count < 0 else f'{count} orphans'} "
                f"(source has {source_count}), e.g. {sample[:3]}"
            )
        details.append(
            {
                "foreign_key": label,
                "target_orphans": count,
                "target_sample": sample,
                "enforced_by": constraint,
                "source_orphans": source_count,
                "source_sample": source_sample,
            }
        )
    passed = not failing
    description = "; ".join(failing) if failing else f"{len(details)} foreign keys without orphans"
    if passed and kept:
        description = f"{len(details)} foreign keys, {kept} orphans kept (orphans: keep)"
    return CheckReport("foreign_keys", passed, description, {"foreign_keys": details})


def check_declared_types(plan: TablePlan) -> CheckReport:
    """Whether every column kept the type its declaration suggests. SQLite enforces
    neither lengths nor types, so the planner widens a column some stored value does not
    fit (``ColumnPlan.widened``); the values are intact, but the schema is not the declared
    one, which the application reading the target may need to know."""
    widened = [
        {
            "column": c.source,
            "declared_type": c.declared_type or None,
            "chosen_type": c.pg_type.sql,
            "why": c.widened,
        }
        for c in plan.columns
        if c.widened
    ]
    description = (
        f"{len(plan.columns)} columns keep the type their declaration suggests"
        if not widened
        else f"{len(widened)} of {len(plan.columns)} columns widened beyond their declared "
        "type: "
        + "; ".join(
            f"{w['column']} {w['declared_type'] or '(no declared type)'} -> {w['chosen_type']}"
            for w in widened
        )
    )
    return CheckReport("declared_types", not widened, description, {"widened_columns": widened})


def guarded(name: str, run: Callable[[], CheckReport]) -> CheckReport:
    """Run one check; an exception becomes a failed outcome that carries the error."""
    try:
        return run()
    except (psycopg.Error, sqlite3.Error, LookupError, ValueError) as exc:
        message = " ".join(str(exc).split())
        return CheckReport(name, False, f"check could not run: {message}", {"error": message})

"""Keys, indexes and foreign keys of a staged table, created after its data.

Before a constraint is created, the rows that would break it are dealt with explicitly:
duplicate primary keys (possible after conversion, e.g. '1' and 1 in an untyped key) go to
quarantine keeping the first occurrence, and FK orphans follow the orphan policy:
``quarantine`` (rows to quarantine, FK created VALID), ``keep`` (FK created NOT VALID, orphans
listed) or ``fail`` (the table fails). Any other constraint that cannot be created becomes a
warning instead of aborting the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from consoleai_etl.core.encode.tuples import row_hash_sql
from consoleai_etl.core.errors import MigrationError
from consoleai_etl.core.plan.merge_plan import MergePlan
from consoleai_etl.core.plan.names import pg_column, pg_identifier
from consoleai_etl.core.plan.table_plan import TablePlan
from consoleai_etl.core.source.catalog import ForeignKey, Table
from consoleai_etl.core.target import bookkeeping, ddl
from consoleai_etl.core.target.ddl import Place
from consoleai_etl.core.types import domains
from consoleai_etl.core.verify.checks import (
    Parents,
    orphan_condition,
    parents,
    pg_orphans,
    table_schema,
)


def _refusal(pg: psycopg.Connection, statement: sql.Composable) -> str | None:
    """Run one statement in a savepoint; PostgreSQL's error on one line, or None."""
    try:
        with pg.transaction():
            pg.execute(statement)
    except psycopg.Error as exc:
        return " ".join(str(exc).split())
    return None


def _attempt(pg: psycopg.Connection, statement: sql.Composable, what: str) -> list[str]:
    """Run one statement in a savepoint; a failure becomes a warning, not an abort."""
    refused = _refusal(pg, statement)
    return [] if refused is None else [f"{what} not created: {refused}"]


def _key_json(table: Table, alias: str) -> sql.Composable:
    if not table.primary_key:
        return sql.SQL("NULL::jsonb")
    return sql.SQL("jsonb_build_object({})").format(
        sql.SQL(", ").join(
            sql.SQL("{}, {}.{}").format(
                sql.Literal(c), sql.Identifier(alias), sql.Identifier(pg_column(c))
            )
            for c in table.primary_key
        )
    )


@dataclass
class Removed:
    """Staged rows moved to quarantine after the COPY, with the sum of their row hashes
    (the load subtracts it from the streamed source checksum)."""

    rows: int = 0
    hash_sum: int = 0

    def __iadd__(self, other: Removed) -> Removed:
        self.rows += other.rows
        self.hash_sum += other.hash_sum
        return self


def _move_to_quarantine(
    pg: psycopg.Connection,
    plan: TablePlan,
    schema: Place,
    run_id: str,
    condition: sql.Composable,
    column: str,
    reason: str,
) -> Removed:
    """Delete the staged rows matching ``condition`` (alias ``c``) into the quarantine."""
    table = plan.table
    statement = sql.SQL(
        "WITH gone AS (DELETE FROM {table} c WHERE {condition} RETURNING c.*), "
        "kept AS ({quarantine}) SELECT count(*), coalesce(sum({hash}), 0) FROM gone"
    ).format(
        table=ddl.qualified(schema, pg_identifier(table.name)),
        condition=condition,
        quarantine=bookkeeping.quarantine_moved_rows(
            run_id, table.name, _key_json(table, "gone"), column, reason, "gone"
        ),
        hash=row_hash_sql(plan.hash_columns, "gone"),
    )
    rows, hash_sum = pg.execute(statement).fetchone()
    return Removed(int(rows), int(hash_sum))


def quarantine_duplicate_keys(
    pg: psycopg.Connection, plan: TablePlan, schema: Place, run_id: str
) -> Removed:
    """Quarantine all but the first (in source order) of rows sharing a primary key."""
    table = plan.table
    if not table.primary_key:
        return Removed()
    keys = sql.SQL(", ").join(sql.Identifier(pg_column(c)) for c in table.primary_key)
    condition = sql.SQL(
        "c.ctid IN (SELECT ctid FROM (SELECT ctid, row_number() OVER "
        "(PARTITION BY {keys} ORDER BY ctid) AS n FROM {table}) d WHERE n > 1)"
    ).format(keys=keys, table=ddl.qualified(schema, pg_identifier(table.name)))
    return _move_to_quarantine(
        pg, plan, schema, run_id, condition, ", ".join(table.primary_key),
        "duplicate primary key (the first occurrence was kept)",
    )  # fmt: skip


# Whether a text reads as a type (a domain's CHECK and NOT NULL included), without
# aborting the transaction when it does not: a subtransaction per value, so it is asked
# only of columns whose type is a constrained domain.
_FITS = """
CREATE OR REPLACE FUNCTION pg_temp.consoleai_fits(value text, type regtype) RETURNS boolean
LANGUAGE plpgsql AS $$BEGIN EXECUTE format('SELECT %L::%s', value, type); RETURN true;
EXCEPTION WHEN others THEN RETURN false; END$$
"""


def retype_columns(pg: psycopg.Connection, plan: TablePlan, schema: Place, run_id: str) -> Removed:
    """Give the staged columns of retyped families (``PgType.staged_sql``) their types:
    first the rows whose value a constrained domain refuses are quarantined, then the
    columns are retyped in one rewrite. Returns rows quarantined."""
    columns = [c for c in plan.columns if c.pg_type.retyped]
    removed = Removed()
    if not columns:
        return removed
    for column in columns:
        if domains.constrained(column.pg_type):
            pg.execute(_FITS)
            condition = sql.SQL("NOT pg_temp.consoleai_fits(c.{}::text, {}::regtype)").format(
                sql.Identifier(column.name), sql.Literal(column.pg_type.sql)
            )
            reason = f"violates the constraints of domain {column.pg_type.sql}"
            removed += _move_to_quarantine(
                pg, plan, schema, run_id, condition, column.source, reason
            )
    try:
        with pg.transaction():
            pg.execute(ddl.retype(plan, schema, columns))
    except psycopg.Error as exc:
        raise MigrationError(
            f"table {plan.table.name}: its columns {', '.join(c.source for c in columns)} "
            f"could not take their types: {' '.join(str(exc).split())}"
        ) from None
    return removed


def set_defaults(pg: psycopg.Connection, plan: TablePlan, schema: Place) -> list[str]:
    """Set the planned defaults, once every column has its type. A default PostgreSQL
    refuses is dropped with a warning, never the table: all are tried in one statement,
    and only when it is refused one by one."""
    columns = [c for c in plan.columns if ddl.default(c) is not None]
    if not columns or _refusal(pg, ddl.set_defaults(plan, schema, columns)) is None:
        return []
    warnings = []
    for column in columns:
        refused = _refusal(pg, ddl.set_defaults(plan, schema, [column]))
        if refused is not None:
            warnings.append(
                f"column {column.source}: default {column.default_sql} dropped: "
                f"PostgreSQL refused it for {column.pg_type.sql} ({refused})"
            )
    return warnings


def add_keys_and_indexes(
    pg: psycopg.Connection, plan: TablePlan, schema: Place, run_id: str, *, indexes: bool = True
) -> tuple[list[str], Removed]:
    """Primary key, unique constraints, indexes (the non-unique ones only with ``indexes``)
    and the identity sequence. The primary key
    is tried first: when PostgreSQL accepts it the keys are unique and the duplicate search
    (a sort of the whole table) is skipped; when it refuses, duplicates are quarantined and
    the key is tried again. Returns (warnings, rows quarantined as duplicates)."""
    warnings, removed = [], Removed()
    primary_key = ddl.primary_key(plan, schema) if plan.table.primary_key else None
    if primary_key is not None and _attempt(pg, primary_key, "primary key"):
        removed = quarantine_duplicate_keys(pg, plan, schema, run_id)
        warnings += _attempt(pg, primary_key, "primary key")
    for index in plan.table.indexes:
        if index.origin != "pk" and not index.unsupported and (indexes or index.unique):
            warnings += _attempt(pg, ddl.index(plan, index, schema), f"index {index.name}")
    identity = ddl.set_identity(plan, schema)
    if identity is not None:
        pg.execute(identity)
    return warnings, removed


def add_foreign_keys(
    pg: psycopg.Connection,
    table: Table,
    fks: tuple[ForeignKey, ...],
    schema: Place,
    target_schema: str,
    *,
    orphans: str = "keep",
    run_id: str = "",
    plan: TablePlan | None = None,
    merge: MergePlan | None = None,
) -> tuple[list[str], Removed]:
    """Create ``fks`` (parents staged in this run, else in the target); returns
    (warnings, rows quarantined as orphans). ``orphans: quarantine`` needs the ``plan``.

    Each key is first added as is, which PostgreSQL validates in one anti-join; only when
    it is refused are the orphans counted and handled by the policy. In merge mode
    (``merge``) a parent row may also be the application's (``checks.parents``): a key
    PostgreSQL refuses is not created (the staged table is only merged from; the
    application's own key guards the target), its orphans are those no parent holds."""
    warnings, quarantined = [], Removed()
    for fk in fks:
        label = f"foreign key {table.name}({', '.join(fk.columns)}) -> {fk.ref_table}"
        found = parents(pg, fk, (schema, target_schema), merge)
        parent_schema = table_schema(pg, (schema, target_schema), pg_identifier(fk.ref_table))
        if found is None or parent_schema is None:
            warnings.append(f"{label} not created: parent table {fk.ref_table} does not exist")
            continue
        parent_columns = tuple(pg_column(c) for c in fk.ref_columns)
        statement = ddl.foreign_key(table, fk, schema, parent_schema, parent_columns, valid=True)
        if (merge is None or parent_schema == schema) and not _attempt(pg, statement, label):
            continue  # PostgreSQL validated it: no orphans, nothing more to search
        try:
            with pg.transaction():
                count, sample = pg_orphans(pg, table, fk, schema, found, 5)
                if count and orphans == "quarantine" and plan is not None:
                    quarantined += _quarantine_orphans(pg, plan, fk, schema, run_id, found)
                    count = 0
        except psycopg.Error as exc:
            warnings.append(f"{label} not created: {' '.join(str(exc).split())}")
            continue
        if count and orphans == "fail":
            raise _orphans_fail(label, count, sample)
        if merge is not None:
            if count:
                warnings.append(f"{label}: {count} orphan rows kept, e.g. {sample}")
            continue
        if count:
            warnings.append(f"{label} created NOT VALID: {count} orphan rows kept, e.g. {sample}")
        statement = ddl.foreign_key(
            table, fk, schema, parent_schema, parent_columns, valid=not count
        )
        warnings += _attempt(pg, statement, label)
    return warnings, quarantined


def _orphans_fail(label: str, count: int, sample: list[list[str]]) -> MigrationError:
    return MigrationError(
        f"{label}: {count} orphan rows, e.g. {sample} (orphans: fail); fix the source "
        "or choose orphans: quarantine / keep"
    )


def _quarantine_orphans(
    pg: psycopg.Connection,
    plan: TablePlan,
    fk: ForeignKey,
    schema: Place,
    run_id: str,
    found: Parents,
) -> Removed:
    return _move_to_quarantine(
        pg, plan, schema, run_id,
        orphan_condition(fk, found),
        ", ".join(fk.columns),
        f"orphan: no {fk.ref_table} row with "
        f"({', '.join(fk.ref_columns)}) = this row's ({', '.join(fk.columns)})",
    )  # fmt: skip


@dataclass(frozen=True)
class Link:
    """A foreign key of a staged table, with the plan its rows were loaded with."""

    plan: TablePlan
    fk: ForeignKey


def settle_cycle(
    pg: psycopg.Connection,
    links: list[Link],
    schema: Place,
    merge: MergePlan,
    *,
    orphans: str,
    run_id: str,
) -> tuple[list[str], dict[str, Removed]]:
    """The keys between the tables of one foreign-key cycle (a self-reference included),
    checked once every table of it is staged (merge mode), against the staged rows and
    the application's together (``checks.parents``). Under ``orphans: quarantine`` a row
    quarantined as an orphan can leave rows depending on it without a parent, along any
    key of the cycle, so the keys are searched again until a pass removes nothing: every
    row depending on a quarantined row follows it, and no other. Returns (warnings, rows
    quarantined per table); ``orphans: fail`` raises on the first orphan."""
    removed: dict[str, Removed] = {link.plan.table.name: Removed() for link in links}
    counted: dict[int, tuple[int, list[list[str]]]] = {}  # by position in ``links``
    again = True
    while again:
        again = False
        for number, link in enumerate(links):
            table = link.plan.table
            found = parents(pg, link.fk, (schema,), merge)
            if found is None:
                continue
            count, sample = pg_orphans(pg, table, link.fk, schema, found, 5)
            counted[number] = count, sample
            if count and orphans == "quarantine":
                removed[table.name] += _quarantine_orphans(
                    pg, link.plan, link.fk, schema, run_id, found
                )
                counted[number] = 0, []
                again = True
    warnings = []
    for number, (count, sample) in counted.items():
        link = links[number]
        label = f"foreign key {link.plan.table.name}({', '.join(link.fk.columns)}) -> "
        label += link.fk.ref_table
        if count and orphans == "fail":
            raise _orphans_fail(label, count, sample)
        if count:
            warnings.append(f"{label}: {count} orphan rows kept, e.g. {sample}")
    return warnings, removed

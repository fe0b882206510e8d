"""SQLite's generated columns, computed by PostgreSQL where it gives the same values.

Every generated column is first loaded as a plain column holding the values SQLite
computed (the source reader SELECTs it like any column), so the load, the quarantine and
the checksum treat it like any other. Then, in staging, before keys and indexes, each is
tried as ``GENERATED ALWAYS AS (expr) STORED`` (PostgreSQL 15 has no VIRTUAL ones):

1. its expression is translated by the views' translator (sqlglot, ``views``);
2. on every staged row, ``CAST((expr) AS type)`` must equal the loaded value
   (``IS DISTINCT FROM``, so NULLs count);
3. PostgreSQL must accept it in a generated column (tried on an empty copy of the table:
   the expression must be IMMUTABLE, and may not use another generated column).

The columns that pass are computed by PostgreSQL from then on: the table is rebuilt with
them in their places (PostgreSQL cannot turn an existing column into a generated one, and
adding one at the end would change the column order), and the checksum check proves
afterwards that the computed values are SQLite's. A column that fails any step stays a
plain column of SQLite's values, with a warning naming it and why.
"""

from __future__ import annotations

from dataclasses import replace

import psycopg
from psycopg import sql

from consoleai_etl.core.plan.names import derived_identifier
from consoleai_etl.core.plan.table_plan import ColumnPlan, TablePlan
from consoleai_etl.core.source.catalog import Catalog, Column
from consoleai_etl.core.target import ddl
from consoleai_etl.core.target.ddl import Place
from consoleai_etl.core.target.views import translate_expression


class Kept(Exception):
    """Why a generated column stays a plain column of SQLite's values."""


def _one_line(exc: BaseException) -> str:
    """An error on one line: PostgreSQL's primary message (without the statement)."""
    diag = getattr(exc, "diag", None)
    return " ".join(((diag and diag.message_primary) or str(exc)).split())


def _translated(source: Column, plan: TablePlan) -> str:
    import sqlglot  # imported when a table has generated columns (0.1-0.2 s, as in views)

    if not source.expression:
        raise Kept("its expression was not found in the table's DDL")
    try:
        return translate_expression(source.expression, Catalog(tables=(plan.table,)))
    except (ValueError, sqlglot.errors.SqlglotError) as exc:
        raise Kept(f"sqlglot cannot translate it ({_one_line(exc)})") from None


def _accepted(pg: psycopg.Connection, probe: sql.Identifier, column: ColumnPlan) -> None:
    """PostgreSQL takes ``column.computed`` as a generation expression: tried on ``probe``,
    an empty copy of the staged table that keeps the columns accepted before, so that an
    expression using one of those (or used by one) is refused as it would be in the
    rebuilt table."""
    try:
        with pg.transaction():
            pg.execute(
                sql.SQL("ALTER TABLE {} DROP COLUMN {c}, ADD COLUMN {c} {} {}").format(
                    probe,
                    sql.SQL(column.pg_type.sql),
                    sql.SQL("GENERATED ALWAYS AS ({}) STORED").format(ddl.computed(column)),
                    c=sql.Identifier(column.name),
                )
            )
    except psycopg.Error as exc:
        raise Kept(f"PostgreSQL refused {column.computed}: {_one_line(exc)}") from None


def _equal(pg: psycopg.Connection, plan: TablePlan, schema: Place, column: ColumnPlan) -> None:
    """Every staged row's value equals what PostgreSQL computes from the row."""
    value = sql.Identifier(column.name)
    statement = sql.SQL(
        "SELECT count(*) OVER (), {v}::text, {e}::text FROM {t} "
        "WHERE {v} IS DISTINCT FROM {e} LIMIT 1"
    ).format(v=value, e=ddl.computed(column), t=ddl.qualified(schema, plan.name))
    try:
        with pg.transaction():
            differing = pg.execute(statement).fetchone()
    except psycopg.Error as exc:
        raise Kept(f"PostgreSQL could not compute {column.computed}: {_one_line(exc)}") from None
    if differing is not None:
        rows, sqlite_value, pg_value = differing
        raise Kept(
            f"PostgreSQL's {column.computed} differs from SQLite's value in {rows} row(s), "
            f"e.g. {pg_value!r} where SQLite computed {sqlite_value!r}"
        )


def _rebuild(pg: psycopg.Connection, plan: TablePlan, schema: Place) -> None:
    """Recreate the staged table with its computed columns in their places, filled from
    the loaded one in its physical order (duplicate keys later keep the first row in that
    order, as without the rebuild). Its identity sequence starts anew under the table's
    own name; ``set_identity`` moves it past max(id) as usual."""
    loaded = derived_identifier(plan.name, "loaded")
    identity = next((c for c in plan.columns if c.identity), None)
    pg.execute(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(
            ddl.qualified(schema, plan.name), sql.Identifier(ddl.relname(schema, loaded))
        )
    )
    if identity is not None:  # frees the sequence's name for the new table's
        pg.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP IDENTITY").format(
                ddl.qualified(schema, loaded), sql.Identifier(identity.name)
            )
        )
    pg.execute(ddl.create_table(plan, schema, staged=False))
    columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in plan.columns if c.computed is None)
    pg.execute(
        sql.SQL("INSERT INTO {} ({c}) SELECT {c} FROM {} ORDER BY ctid").format(
            ddl.qualified(schema, plan.name), ddl.qualified(schema, loaded), c=columns
        )
    )
    pg.execute(sql.SQL("DROP TABLE {}").format(ddl.qualified(schema, loaded)))


def compute_generated(
    pg: psycopg.Connection, plan: TablePlan, schema: Place
) -> tuple[TablePlan, list[str]]:
    """The plan with the generated columns PostgreSQL computes (``ColumnPlan.computed``),
    the staged table rebuilt so; and a warning per generated column kept plain. Runs after
    the columns have their final types and before defaults, keys and indexes."""
    columns = list(plan.columns)
    warnings: list[str] = []
    generated = [
        (i, source)
        for i, c in enumerate(columns)
        if (source := plan.table.column(c.source)).generated
    ]
    if not generated:
        return plan, warnings
    probe = sql.Identifier(derived_identifier(plan.name, "generated_probe"))
    with pg.transaction(force_rollback=True):  # the probe table is gone afterwards
        pg.execute(
            sql.SQL("CREATE TEMP TABLE {} (LIKE {})").format(
                probe, ddl.qualified(schema, plan.name)
            )
        )
        for i, source in generated:
            try:
                column = replace(columns[i], computed=_translated(source, plan))
                _equal(pg, plan, schema, column)
                _accepted(pg, probe, column)
                columns[i] = column
            except Kept as why:
                columns[i] = _with_reason(columns[i], source, None)
                warnings.append(
                    f"column {source.name}: generated in SQLite (AS ({source.expression}) "
                    f"{source.generated}), migrated as a plain column holding SQLite's "
                    f"values: {why}"
                )
    computed = [(i, source) for i, source in generated if columns[i].computed is not None]
    for i, source in computed:
        columns[i] = _with_reason(columns[i], source, columns[i].computed)
    planned = replace(plan, columns=tuple(columns))
    if computed:
        _rebuild(pg, planned, schema)
    return planned, warnings


def _with_reason(column: ColumnPlan, source: Column, computed: str | None) -> ColumnPlan:
    """The column's entry in the type plan says what became of its generation."""
    if computed is None:
        how = f"generated in SQLite ({source.generated}): a plain column of SQLite's values"
    else:
        virtual = "" if source.generated == "STORED" else " (VIRTUAL in SQLite)"
        how = f"GENERATED ALWAYS AS ({computed}) STORED{virtual}, values proven equal"
    return replace(column, reason=f"{column.reason}; {how}")

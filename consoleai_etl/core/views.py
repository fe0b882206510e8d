"""SQLite views translated to PostgreSQL with sqlglot, created after the tables are promoted.

Identifiers are matched case-insensitively to the catalog's spelling (SQLite ignores case,
quoted PostgreSQL identifiers do not), and ``boolean_column = 0/1`` comparisons become
``= false/true`` because the column is ``boolean`` now. A view that still fails is listed
in the report with both SQL texts and the error; it never fails the migration.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
import sqlglot
from psycopg import sql
from sqlglot import exp

from consoleai_etl.core.catalog import Catalog, SchemaObject
from consoleai_etl.core.ddl import qualified
from consoleai_etl.core.declared import declared_pg_type
from consoleai_etl.core.names import pg_identifier


@dataclass
class ViewResult:
    name: str
    created: bool
    source_sql: str
    target_sql: str | None = None
    error: str | None = None


def _spellings(catalog: Catalog) -> dict[str, str]:
    names = {t.name.lower(): pg_identifier(t.name) for t in catalog.tables}
    for table in catalog.tables:
        for column in table.columns:
            names.setdefault(column.name.lower(), pg_identifier(column.name))
    return names


def _boolean_columns(catalog: Catalog) -> set[str]:
    return {
        c.name.lower()
        for t in catalog.tables
        for c in t.columns
        if (pg := declared_pg_type(c.declared_type)) is not None and pg.kind == "boolean"
    }


def translate(view: SchemaObject, catalog: Catalog) -> str:
    """The view's CREATE VIEW statement in PostgreSQL, every identifier quoted."""
    spellings, booleans = _spellings(catalog), _boolean_columns(catalog)

    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Identifier):
            lower = node.name.lower()
            # Table aliases are case-insensitive in SQLite: give definition and uses one case.
            is_alias = isinstance(node.parent, exp.TableAlias) or (
                isinstance(node.parent, exp.Column) and node.arg_key == "table"
            )
            spelling = spellings.get(lower, lower if is_alias else node.name)
            return exp.Identifier(this=spelling, quoted=True)
        if isinstance(node, exp.EQ | exp.NEQ):
            column, literal = node.this, node.expression
            if (
                isinstance(column, exp.Column)
                and column.name.lower() in booleans
                and isinstance(literal, exp.Literal)
                and literal.name in ("0", "1")
            ):
                node.set("expression", exp.Boolean(this=literal.name == "1"))
        return node

    parsed = sqlglot.parse_one(view.sql, read="sqlite").transform(fix)
    return parsed.sql(dialect="postgres", identify=True)


def drop_views(pg: psycopg.Connection, schema: str, views: list[SchemaObject]) -> None:
    """Drop the views an earlier run created, so the tables under them can be replaced."""
    for view in views:
        pg.execute(
            sql.SQL("DROP VIEW IF EXISTS {}").format(qualified(schema, pg_identifier(view.name)))
        )


def create_views(
    pg: psycopg.Connection, schema: str, views: list[SchemaObject], catalog: Catalog
) -> list[ViewResult]:
    """Create each view in ``schema`` (own savepoint each); failures are results, not errors."""
    results = []
    pg.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
    for view in views:
        result = ViewResult(view.name, False, view.sql)
        try:
            result.target_sql = translate(view, catalog)
            with pg.transaction():
                pg.execute(result.target_sql)
            result.created = True
        except (sqlglot.errors.SqlglotError, psycopg.Error) as exc:
            result.error = " ".join(str(exc).split())
        results.append(result)
    pg.execute("RESET search_path")
    return results

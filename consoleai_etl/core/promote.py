"""Promotion: move staged tables into the target schema in one transaction.

``ALTER TABLE ... SET SCHEMA`` moves a table with its indexes, constraints and identity
sequence without copying data, so the swap is quick and the target never holds a mix of old
and new tables: either the transaction commits or the old tables stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from consoleai_etl.core.catalog import Catalog, ForeignKey, SchemaObject, Table
from consoleai_etl.core.constraints import add_foreign_keys
from consoleai_etl.core.ddl import qualified
from consoleai_etl.core.errors import TargetError
from consoleai_etl.core.names import pg_identifier
from consoleai_etl.core.views import ViewResult, create_views, drop_views


def staged_tables(pg: psycopg.Connection, staging: str) -> set[str]:
    rows = pg.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s", (staging,)
    ).fetchall()
    return {name for (name,) in rows}


@dataclass(frozen=True)
class Promotion:
    """What a migration run promotes: its staged tables, cycle FKs and the source's views."""

    catalog: Catalog
    tables: tuple[Table, ...]
    deferred: tuple[tuple[Table, ForeignKey], ...] = ()

    @property
    def views(self) -> list[SchemaObject]:
        return [o for o in self.catalog.others if o.kind == "view"]


def promote(
    pg: psycopg.Connection, staging: str, target: str, promotion: Promotion
) -> tuple[list[str], list[ViewResult]]:
    """Replace the target's copies of the tables by the staged ones, then (re)create views.

    Must run inside the caller's transaction, so the run's history row commits with it.
    Returns (warnings, view results).
    """
    warnings: list[str] = []
    for table, fk in promotion.deferred:
        # Orphans of a cycle-closing FK are kept (NOT VALID): the tables' counts are final.
        fk_warnings, _ = add_foreign_keys(pg, table, (fk,), staging, target, orphans="keep")
        warnings += fk_warnings
    names = [pg_identifier(t.name) for t in promotion.tables]
    pg.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(target)))
    drop_views(pg, target, promotion.views)
    existing = sorted(staged_tables(pg, target) & set(names))
    if existing:
        try:
            with pg.transaction():
                pg.execute(
                    sql.SQL("DROP TABLE {}").format(
                        sql.SQL(", ").join(qualified(target, n) for n in existing)
                    )
                )
        except psycopg.errors.DependentObjectsStillExist as exc:
            detail = " ".join((exc.diag.message_detail or str(exc)).split())
            raise TargetError(
                f"cannot replace tables in schema {target}: other objects depend on them "
                f"({detail}); drop or migrate those objects together with the tables"
            ) from None
    for name in names:
        pg.execute(
            sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                qualified(staging, name), sql.Identifier(target)
            )
        )
    return warnings, create_views(pg, target, promotion.views, promotion.catalog)

"""Promotion: move staged tables into the target schema in one transaction.

``ALTER TABLE ... SET SCHEMA`` moves a table with its indexes, constraints and identity
sequence without copying data, then renames take off the run's prefix (``Staging.promote``),
so the swap is quick and the target never holds a mix of old and new tables: either the
transaction commits or the old tables stay as they were.

Only what an earlier run promoted is replaced (``consoleai_etl.owned_relations``, by oid):
an application's own table or view of the same name stops the run, in preflight and again
here, unless the run says ``replace_existing``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from consoleai_etl.core.errors import TargetError, option
from consoleai_etl.core.plan.names import pg_identifier
from consoleai_etl.core.source.catalog import Catalog, ForeignKey, SchemaObject, Table
from consoleai_etl.core.target import bookkeeping
from consoleai_etl.core.target.constraints import add_foreign_keys
from consoleai_etl.core.target.ddl import index_names, qualified
from consoleai_etl.core.target.locks import LockPolicy, lock_tables
from consoleai_etl.core.target.postgres import create_schema
from consoleai_etl.core.target.staging import Staging
from consoleai_etl.core.target.views import ViewResult, create_views

# pg_class.relkind -> what it is (also the DROP keyword); a source table or view name may
# meet any of them in the target schema. Views first: they may depend on the tables.
RELATION_KINDS = {
    "v": "view",
    "m": "materialized view",
    "f": "foreign table",
    "r": "table",
    "p": "table",  # partitioned
}
LOCKABLE = ("table", "view")  # what LOCK TABLE takes; DROP waits for the others (lock_timeout)


@dataclass(frozen=True)
class Relation:
    """A table or view that already exists in the target schema."""

    name: str
    kind: str
    oid: int

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


def existing_relations(pg: psycopg.Connection, schema: str, names: Iterable[str]) -> list[Relation]:
    """The relations of ``schema`` named like one of ``names``, views first."""
    rows = pg.execute(
        "SELECT c.relname, c.relkind, c.oid FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind = ANY(%s) "
        "ORDER BY c.relname",
        (schema, list(names), list(RELATION_KINDS)),
    ).fetchall()
    order = list(RELATION_KINDS)
    rows.sort(key=lambda row: order.index(row[1]))
    return [Relation(name, RELATION_KINDS[kind], int(oid)) for name, kind, oid in rows]


def unowned(pg: psycopg.Connection, relations: list[Relation], schema: str) -> list[Relation]:
    """The relations no earlier run of this tool promoted into ``schema``."""
    owned = bookkeeping.owned_relations(pg, schema)
    return [r for r in relations if owned.get(r.name) != r.oid]


def ownership_error(schema: str, foreign: list[Relation]) -> TargetError:
    """The one line that stops a run before it would drop what it does not own."""
    listing = ", ".join(map(str, foreign))
    return TargetError(
        f"schema {schema} already has {listing}, not created by an earlier run of "
        f"consoleai-etl: nothing is dropped; migrate into another schema "
        f"({option('target_schema')}), or set {option('replace_existing', 'true')} to "
        f"replace them, or load the rows into them (merge mode: {option('mode', 'merge')})"
    )


@dataclass(frozen=True)
class Promotion:
    """What a migration run promotes: its staged tables, cycle FKs and the source's views."""

    catalog: Catalog
    tables: tuple[Table, ...]
    deferred: tuple[tuple[Table, ForeignKey], ...] = ()

    @property
    def views(self) -> list[SchemaObject]:
        return [o for o in self.catalog.others if o.kind == "view"]

    @property
    def names(self) -> list[str]:
        """The PostgreSQL names it creates in the target: its tables and the views."""
        return [pg_identifier(o.name) for o in (*self.tables, *self.views)]


def _drop(pg: psycopg.Connection, target: str, relations: list[Relation]) -> None:
    """Drop ``relations`` (views first, then tables, one statement per kind so FKs between
    the tables do not matter); an object that depends on them stops the promotion."""
    for kind in dict.fromkeys(RELATION_KINDS.values()):
        names = [r.name for r in relations if r.kind == kind]
        if not names:
            continue
        try:
            with pg.transaction():
                pg.execute(
                    sql.SQL("DROP {} {}").format(
                        sql.SQL(kind.upper()),
                        sql.SQL(", ").join(qualified(target, n) for n in names),
                    )
                )
        except psycopg.errors.DependentObjectsStillExist as exc:
            detail = " ".join((exc.diag.message_detail or str(exc)).split())
            raise TargetError(
                f"cannot replace tables in schema {target}: other objects depend on them "
                f"({detail}); drop or migrate those objects together with the tables"
            ) from None


def promote(
    pg: psycopg.Connection,
    src: sqlite3.Connection,
    run_id: str,
    target: str,
    promotion: Promotion,
    *,
    locks: LockPolicy,
    replace_existing: bool = False,
) -> tuple[list[str], list[ViewResult]]:
    """Replace the target's copies of the tables by the staged ones, then create and prove
    the views (``src`` is the source, for the views' rows).

    Must run inside the caller's transaction, so the run's history row commits with it.
    First takes the tables and views it replaces, with bounded waits (``locks``: raises
    ``LockBusy``). Ownership is checked again here: a table created after the preflight is
    not dropped. Returns (warnings, view results).
    """
    staging = Staging(run_id)
    warnings: list[str] = []
    existing = existing_relations(pg, target, promotion.names)
    lock_tables(
        pg,
        [qualified(target, r.name) for r in existing if r.kind in LOCKABLE],
        "ACCESS EXCLUSIVE",
        locks,
    )
    for table, fk in promotion.deferred:
        # Orphans of a cycle-closing FK are kept (NOT VALID): the tables' counts are final.
        fk_warnings, _ = add_foreign_keys(pg, table, (fk,), staging, target, orphans="keep")
        warnings += fk_warnings
    create_schema(pg, target)
    foreign = unowned(pg, existing, target)
    if foreign and not replace_existing:
        raise ownership_error(target, foreign)
    warnings += [
        f"replaced {r} in schema {target}, which no earlier run created (replace_existing)"
        for r in foreign
    ]
    _drop(pg, target, existing)
    for table in promotion.tables:
        staging.promote(pg, pg_identifier(table.name), target, index_names(table))
    views = create_views(pg, src, target, promotion.views, promotion.catalog)
    bookkeeping.record_owned(pg, target, run_id, promotion.names)
    return warnings, views

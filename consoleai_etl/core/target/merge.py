"""Merge staged tables into an application's existing tables (merge mode), inside the
caller's transaction: ``INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE changed``, counting
what was inserted, updated and left unchanged, and the target's rows the source lacks; then
proving that the target holds every staged source row with equal values (the staged rows
are the ones the checks proved equal to the source); and, last, each merged identity or
serial sequence is moved to the largest key, never backwards.

The caller runs every table in one transaction, so a failure anywhere leaves the target as
it was. Nothing here drops or creates a relation in the target.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from consoleai_etl.core.errors import TargetError
from consoleai_etl.core.plan.merge_plan import MergeColumn, MergePlan, TableMerge
from consoleai_etl.core.source.catalog import ForeignKey


def _target(merge: TableMerge) -> sql.Composed:
    return sql.Identifier(merge.target.schema, merge.target.name)


def _cast(column: MergeColumn, alias: str) -> sql.Composed:
    """The staged value as the target's type (whitelisted by ``staged_type``)."""
    return sql.SQL("CAST({}.{} AS {})").format(
        sql.Identifier(alias), sql.Identifier(column.staged), sql.SQL(column.target_type)
    )


def _comparable(column: MergeColumn, alias: str) -> sql.Composed:
    """The target column, in a form ``IS DISTINCT FROM`` can compare (json has no equality:
    its text is compared)."""
    value = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(column.target))
    return sql.SQL("{}::text").format(value) if column.target_type == "json" else value


def _list(parts: list[sql.Composable]) -> sql.Composable:
    return sql.SQL(", ").join(parts)


def _on_conflict(merge: TableMerge, on_conflict: str) -> sql.Composable:
    """``DO UPDATE`` of the columns the source fills outside the key, only where one of
    them differs (so an unchanged row is not rewritten); ``DO NOTHING`` to skip."""
    key = _list([sql.Identifier(c) for c in merge.key])
    changing = [c for c in merge.columns if c.target not in merge.key]
    if on_conflict == "skip" or not changing:
        return sql.SQL("ON CONFLICT ({}) DO NOTHING").format(key)
    return sql.SQL(
        "ON CONFLICT ({key}) DO UPDATE SET ({cols}) = ROW({new}) WHERE ROW({old}) IS DISTINCT "
        "FROM ROW({excluded})"
    ).format(
        key=key,
        cols=_list([sql.Identifier(c.target) for c in changing]),
        new=_list([sql.SQL("EXCLUDED.{}").format(sql.Identifier(c.target)) for c in changing]),
        old=_list([_comparable(c, "t") for c in changing]),
        excluded=_list([_comparable(c, "excluded") for c in changing]),
    )


def _upsert(pg: psycopg.Connection, merge: TableMerge, staging: str, on_conflict: str) -> tuple:
    """(inserted, updated): ``xmax = 0`` in RETURNING marks a row the INSERT created."""
    statement = sql.SQL(
        "WITH written AS (INSERT INTO {target} AS t ({cols}) OVERRIDING SYSTEM VALUE "
        "SELECT {values} FROM {staged} s {conflict} RETURNING xmax = 0 AS inserted) "
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) "
        "FROM written"
    ).format(
        target=_target(merge),
        cols=_list([sql.Identifier(c.target) for c in merge.columns]),
        values=_list([_cast(c, "s") for c in merge.columns]),
        staged=sql.Identifier(staging, merge.staged),
        conflict=_on_conflict(merge, on_conflict),
    )
    return pg.execute(statement).fetchone()


def _from_source(merge: TableMerge, staging: str) -> sql.Composed:
    """``EXISTS`` a staged source row with the key of the target row ``t``."""
    return sql.SQL(
        "EXISTS (SELECT 1 FROM {staged} s WHERE ROW({source_key}) = ROW({target_key}))"
    ).format(
        staged=sql.Identifier(staging, merge.staged),
        source_key=_list([_cast(_by_target(merge, k), "s") for k in merge.key]),
        target_key=_list([sql.SQL("t.{}").format(sql.Identifier(k)) for k in merge.key]),
    )


def _extra_in_target(pg: psycopg.Connection, merge: TableMerge, staging: str) -> int:
    """Target rows whose key no staged source row has (the application's own rows)."""
    statement = sql.SQL("SELECT count(*) FROM {target} t WHERE NOT {from_source}").format(
        target=_target(merge), from_source=_from_source(merge, staging)
    )
    return pg.execute(statement).fetchone()[0]


def _not_in_target(pg: psycopg.Connection, merge: TableMerge, staging: str) -> int:
    """Staged source rows that the target does not hold with equal values in the merged
    columns, counted exactly (``EXCEPT ALL`` over the target's types): the merge's proof."""
    statement = sql.SQL(
        "SELECT count(*) FROM (SELECT {source} FROM {staged} s EXCEPT ALL "
        "SELECT {target} FROM {table} t) missing"
    ).format(
        source=_list([_comparable_cast(c, "s") for c in merge.columns]),
        staged=sql.Identifier(staging, merge.staged),
        target=_list([_comparable(c, "t") for c in merge.columns]),
        table=_target(merge),
    )
    return pg.execute(statement).fetchone()[0]


def _comparable_cast(column: MergeColumn, alias: str) -> sql.Composable:
    """The staged value as the target's type, comparable as ``_comparable`` makes it."""
    value = _cast(column, alias)
    return sql.SQL("{}::text").format(value) if column.target_type == "json" else value


def prove_merged(pg: psycopg.Connection, merge: TableMerge, staging: str) -> tuple[int, int]:
    """(staged source rows the target does not hold with equal values, target rows the
    source does not have): how a merged table is re-verified."""
    return _not_in_target(pg, merge, staging), _extra_in_target(pg, merge, staging)


def merged_orphans(
    pg: psycopg.Connection,
    plan: MergePlan,
    merge: TableMerge,
    foreign_keys: tuple[ForeignKey, ...],
    staging: str,
) -> dict[str, int]:
    """Per source foreign key whose parent table is merged too, how many of the rows the
    source gave the target table (their keys are staged) point at no parent row of the
    target's parent table (names mapped as the merge maps them; a NULL part is no
    reference, as in PostgreSQL's MATCH SIMPLE)."""
    columns = {c.source: c for c in merge.columns}
    orphans = {}
    for fk in foreign_keys:
        parent = plan.tables.get(fk.ref_table)
        if parent is None or not fk.ref_columns:
            continue
        parent_columns = {c.source: c for c in parent.columns}
        if not set(fk.columns) <= set(columns) or not set(fk.ref_columns) <= set(parent_columns):
            continue
        refs = _list(
            [sql.SQL("t.{}").format(sql.Identifier(columns[c].target)) for c in fk.columns]
        )
        statement = sql.SQL(
            "SELECT count(*) FROM {target} t WHERE ROW({refs}) IS NOT NULL AND {from_source} "
            "AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE ROW({parent_cols}) = ROW({refs}))"
        ).format(
            target=_target(merge),
            refs=refs,
            from_source=_from_source(merge, staging),
            parent=_target(parent),
            parent_cols=_list(
                [
                    sql.SQL("p.{}").format(sql.Identifier(parent_columns[c].target))
                    for c in fk.ref_columns
                ]
            ),
        )
        label = f"({', '.join(fk.columns)}) -> {fk.ref_table}"
        orphans[label] = pg.execute(statement).fetchone()[0]
    return orphans


def _by_target(merge: TableMerge, name: str) -> MergeColumn:
    return next(c for c in merge.columns if c.target == name)


def move_sequences(pg: psycopg.Connection, merge: TableMerge, *, apply: bool) -> dict[str, int]:
    """Each merged column's identity or serial sequence that stands behind the column's
    largest value, moved there (with ``apply``; a dry run only says where). A sequence
    already further (the application inserted higher ids) keeps its place. ``setval`` is
    not undone by a rollback, so the caller moves sequences last, once every table merged.
    Returns {column: new value}."""
    moved = {}
    mapped = {c.target for c in merge.columns}
    for column in merge.target.columns:
        if column.sequence is None or column.name not in mapped:
            continue
        row = pg.execute(
            sql.SQL(
                "SELECT m FROM (SELECT max({col}) AS m FROM {t}) x WHERE m > coalesce("
                "pg_sequence_last_value(%(seq)s::regclass), "
                "(SELECT seqstart - 1 FROM pg_sequence WHERE seqrelid = %(seq)s::regclass))"
            ).format(col=sql.Identifier(column.name), t=_target(merge)),
            {"seq": column.sequence},
        ).fetchone()
        if row:
            moved[column.name] = int(row[0])
            if apply:
                pg.execute("SELECT setval(%s::regclass, %s)", (column.sequence, row[0]))
    return moved


def merge_table(
    pg: psycopg.Connection, merge: TableMerge, staging: str, on_conflict: str, staged_rows: int
) -> dict[str, object]:
    """Merge one staged table; its counts for the report. An SQL error becomes a
    ``TargetError`` naming the table (the caller's transaction then rolls back)."""
    try:
        with pg.transaction():  # a savepoint, so the error can be read and re-raised cleanly
            inserted, updated = _upsert(pg, merge, staging, on_conflict)
            counts: dict[str, object] = {
                "inserted": inserted,
                "updated": updated,
                "unchanged": staged_rows - inserted - updated,
                "extra_in_target": _extra_in_target(pg, merge, staging),
            }
            differing = _not_in_target(pg, merge, staging)
    except psycopg.Error as exc:
        raise TargetError(
            f"merge of table {merge.source} into {merge.target.schema}.{merge.target.name} "
            f"failed: {' '.join(str(exc).split())}"
        ) from None
    target = f"{merge.target.schema}.{merge.target.name}"
    if differing and on_conflict == "skip":
        counts["kept_target_values"] = differing  # skip keeps what the application holds
    elif differing:
        raise TargetError(
            f"merge of table {merge.source} into {target} is not proven: {differing} source "
            "rows are not in the target with equal values after the upsert (a trigger or rule "
            "of the target changed them?); nothing of the merge was kept"
        )
    return counts

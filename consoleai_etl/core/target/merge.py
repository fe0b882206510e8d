"""Merge staged tables into an application's existing tables (merge mode), inside the
caller's transaction. Each table is first compared with its target in one hash join on the
key (``prove_merged``): when the target already holds every staged row with equal values,
that comparison is the proof and nothing is written (a re-merge of unchanged data reads both
tables once). Otherwise the rows that differ are upserted (``INSERT ... ON CONFLICT (key)
DO UPDATE ... WHERE changed``), counting what was inserted and updated, and the comparison
runs again as the proof. Last, each merged identity or serial sequence is moved to the
largest key, never backwards.

The caller runs every table in one transaction, so a failure anywhere leaves the target as
it was. Nothing here drops or creates a relation in the target.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql

from consoleai_etl.core.errors import TargetError
from consoleai_etl.core.plan.merge_plan import MergeColumn, MergePlan, TableMerge
from consoleai_etl.core.run.report import divergences
from consoleai_etl.core.source.catalog import ForeignKey
from consoleai_etl.core.verify.checks import SAMPLE_KEYS


def _target(merge: TableMerge) -> sql.Composed:
    return sql.Identifier(merge.target.schema, merge.target.name)


def _cast(column: MergeColumn, alias: str) -> sql.Composed:
    """The staged value as the target's type (a name read from the catalog: ``existing``)."""
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
    return sql.SQL("ON CONFLICT ({key}) DO UPDATE SET ({cols}) = ROW({new}) WHERE {differ}").format(
        key=key,
        cols=_list([sql.Identifier(c.target) for c in changing]),
        new=_list([sql.SQL("EXCLUDED.{}").format(sql.Identifier(c.target)) for c in changing]),
        differ=_values_differ(changing, "t", "excluded"),
    )


def _staged_as_target(merge: TableMerge, staging: str) -> sql.Composed:
    """The staged rows, each column cast to the target's type under the target's name."""
    return sql.SQL("(SELECT {columns} FROM {staged} s)").format(
        columns=_list(
            [
                sql.SQL("{} AS {}").format(_cast(c, "s"), sql.Identifier(c.target))
                for c in merge.columns
            ]
        ),
        staged=sql.Identifier(staging, merge.staged),
    )


def _same_key(merge: TableMerge, left: str, right: str) -> sql.Composed:
    """``=`` on every key column: a hash join, where ``IS NOT DISTINCT FROM`` would compare
    every pair (the merge plan refuses a key that can be NULL in the target)."""
    return sql.SQL(" AND ").join(
        sql.SQL("{}.{} = {}.{}").format(
            sql.Identifier(left), sql.Identifier(k), sql.Identifier(right), sql.Identifier(k)
        )
        for k in merge.key
    )


def _values_differ(columns: Sequence[MergeColumn], left: str, right: str) -> sql.Composed:
    """``columns`` of the rows ``left`` and ``right`` differ (NULLs compare equal)."""
    return sql.SQL("ROW({}) IS DISTINCT FROM ROW({})").format(
        _list([_comparable(c, left) for c in columns]),
        _list([_comparable(c, right) for c in columns]),
    )


def prove_merged(pg: psycopg.Connection, merge: TableMerge, staging: str) -> tuple[int, int]:
    """(staged source rows the target does not hold with equal values, target rows whose key
    no staged row has: the application's own), in one hash join of the two tables on the
    key. Staged keys are unique (their primary key was validated in staging) and so are the
    target's (the key is one of its unique keys), so a staged row is held exactly when the
    target row with its key has equal values in every merged column: this is the merge's
    proof, and how a merged table is re-verified."""
    key = sql.Identifier(merge.key[0])  # NOT NULL in the target: NULL here = no such row
    statement = sql.SQL(
        "SELECT count(*) FILTER (WHERE t.{key} IS NULL OR (s.{key} IS NOT NULL AND {differ})), "
        "count(*) FILTER (WHERE s.{key} IS NULL AND t.{key} IS NOT NULL) "
        "FROM {staged} s FULL JOIN {target} t ON {same_key}"
    ).format(
        key=key,
        differ=_values_differ(merge.columns, "s", "t"),
        staged=_staged_as_target(merge, staging),
        target=_target(merge),
        same_key=_same_key(merge, "s", "t"),
    )
    differing, extra = pg.execute(statement).fetchone()
    return differing, extra


SHORT_VALUE = 40  # characters of a value shown in a divergence


def differences(
    pg: psycopg.Connection, merge: TableMerge, staging: str, limit: int = SAMPLE_KEYS
) -> list[dict[str, object]]:
    """The first ``limit`` staged source rows (in key order) that the target does not hold
    with equal values, found by ``prove_merged``'s join: each its key and either "missing
    in target" or, per column that differs, the source and target values as text (cut to
    ``SHORT_VALUE`` characters). Names are the source's, and each entry has the shape of
    the replace-mode locator's (``checksum.locate``), so that reports show both alike."""
    names = {c.target: c.source for c in merge.columns}
    keys = [sql.SQL("s.{}").format(sql.Identifier(k)) for k in merge.key]
    shown = [
        sql.SQL("{} IS DISTINCT FROM {}, s.{c}::text, t.{c}::text").format(
            _comparable(c, "s"), _comparable(c, "t"), c=sql.Identifier(c.target)
        )
        for c in merge.columns
    ]
    statement = sql.SQL(
        "SELECT {keys}, t.{key} IS NULL, {shown} FROM {staged} s LEFT JOIN {target} t "
        "ON {same_key} WHERE t.{key} IS NULL OR {differ} ORDER BY {keys} LIMIT {limit}"
    ).format(
        keys=_list(keys),
        key=sql.Identifier(merge.key[0]),
        shown=_list(shown),
        staged=_staged_as_target(merge, staging),
        target=_target(merge),
        same_key=_same_key(merge, "s", "t"),
        differ=_values_differ(merge.columns, "s", "t"),
        limit=sql.Literal(limit),
    )
    found: list[dict[str, object]] = []
    width = len(merge.key)
    for row in pg.execute(statement):
        key = {names[k]: _plain(value) for k, value in zip(merge.key, row[:width], strict=True)}
        if row[width]:
            found.append({"key": key, "divergence": "missing in target"})
            continue
        shown_values = row[width + 1 :]
        columns = {
            column.source: {
                "source": _cut(shown_values[3 * i + 1]),
                "target": _cut(shown_values[3 * i + 2]),
            }
            for i, column in enumerate(merge.columns)
            if shown_values[3 * i]
        }
        found.append({"key": key, "divergence": "values differ", "columns": columns})
    return found


def _plain(value: object) -> object:
    """A key value as reports hold it (JSON): a number or text as it is, else its text."""
    return value if isinstance(value, int | float | str) else str(value)


def _cut(value: str | None) -> str | None:
    if value is None or len(value) <= SHORT_VALUE:
        return value
    return value[: SHORT_VALUE - 1] + "…"


def _upsert(pg: psycopg.Connection, merge: TableMerge, staging: str, on_conflict: str) -> tuple:
    """(inserted, updated) by upserting the staged rows the target does not hold with equal
    values (an unchanged row is neither rewritten nor even offered to ``ON CONFLICT``, whose
    per-row index probe is the expensive part). ``xmax = 0`` in RETURNING marks a row the
    INSERT created."""
    statement = sql.SQL(
        "WITH written AS (INSERT INTO {target} AS t ({cols}) OVERRIDING SYSTEM VALUE "
        "SELECT * FROM {staged} s WHERE NOT EXISTS (SELECT 1 FROM {target} u WHERE {same_key} "
        "AND NOT {differ}) {conflict} RETURNING xmax = 0 AS inserted) "
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) "
        "FROM written"
    ).format(
        target=_target(merge),
        cols=_list([sql.Identifier(c.target) for c in merge.columns]),
        staged=_staged_as_target(merge, staging),
        same_key=_same_key(merge, "s", "u"),
        differ=_values_differ(merge.columns, "s", "u"),
        conflict=_on_conflict(merge, on_conflict),
    )
    return pg.execute(statement).fetchone()


def _from_source(merge: TableMerge, staging: str) -> sql.Composed:
    """``EXISTS`` a staged source row with the key of the target row ``t``."""
    return sql.SQL("EXISTS (SELECT 1 FROM {staged} s WHERE {same_key})").format(
        staged=_staged_as_target(merge, staging), same_key=_same_key(merge, "s", "t")
    )


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
            differing, extra = prove_merged(pg, merge, staging)
            inserted = updated = 0
            unproven: list[dict[str, object]] = []
            if differing:  # else the comparison was the proof: nothing to write
                inserted, updated = _upsert(pg, merge, staging, on_conflict)
                differing, _ = prove_merged(pg, merge, staging)
                if differing and on_conflict != "skip":
                    unproven = differences(pg, merge, staging)
            counts: dict[str, object] = {
                "inserted": inserted,
                "updated": updated,
                "unchanged": staged_rows - inserted - updated,
                "extra_in_target": extra,
            }
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
            f"rows are not in the target with equal values after the upsert "
            f"({divergences(unproven)}: a trigger or rule of the target changed them?); "
            "nothing of the merge was kept"
        )
    return counts

"""Merge staged tables into an application's existing tables (merge mode), inside the
caller's transaction. Each table is first compared with its target in one hash join on the
key (``prove_merged``): when the target already holds every staged row with equal values,
that comparison is the proof and nothing is written (a re-merge of unchanged data reads both
tables once). Otherwise the rows that differ are upserted (``INSERT ... ON CONFLICT (key)
DO UPDATE ... WHERE changed``), counting what was inserted and updated, and the comparison
runs again as the proof. A table that holds none of the staged keys (a first merge) takes
them with a plain ``INSERT`` (``_insert_all``): ON CONFLICT's speculative insertion costs
a third more into indexed tables and has nothing to settle there. When nothing in the
target can change a row on its way in (no enabled trigger, no rule, on the table or its
partitions: ``existing.rewrites_rows``) and the insert wrote every staged row, the target
then holds exactly the staged rows cast to its types — both sides of what the comparison
would compare — so it is not run again (a third less on such a first merge). Last, each
merged identity or serial sequence is moved to the largest key, never backwards.

The application's own writes win. Each merge records, per key, the hash of the row it took
from the source (``bookkeeping.record_merged``); a row the target holds with other values
is then written only when the source changed it since that record and the application did
not. A row the application changed while the source did not is kept (counted as
``kept_application_changes``); a row both changed, or one no merge recorded, is a conflict,
settled by ``on_conflict``: ``target`` keeps the application's row, ``source`` writes the
source's, ``fail`` stops the merge. Every row the application changed is recorded with the
run (``bookkeeping.record_application_changes``); the upsert leaves out those kept, and the
proof counts them apart instead of as rows not held.

The row hash is ``hash_record_extended(ROW(merged columns), 0)`` over the target's types
(PostgreSQL 14+): each type's own extended hash function, which agrees with its equality
(``1.0`` and ``1.00`` hash alike, as they compare equal), does not depend on session
settings, and is the one hash partitioning stores, so it stays the same across server
versions. The key is recorded in its binary form, ``record_send(ROW(key columns))``.

The caller runs every table in one transaction, so a failure anywhere leaves the target as
it was. Nothing here drops or creates a relation in the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from consoleai_etl.core.errors import TargetError
from consoleai_etl.core.plan.merge_plan import MergeColumn, MergePlan, OnConflict, TableMerge
from consoleai_etl.core.run.report import divergences, named_keys
from consoleai_etl.core.source.catalog import ForeignKey
from consoleai_etl.core.target import bookkeeping, ddl, existing
from consoleai_etl.core.target.locks import LOCK_WAITS
from consoleai_etl.core.target.postgres import connection_lost
from consoleai_etl.core.target.staging import Staging
from consoleai_etl.core.verify.checks import SAMPLE_KEYS, parents


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


def _on_conflict(merge: TableMerge) -> sql.Composable:
    """``DO UPDATE`` of the columns the source fills outside the key, only where one of
    them differs (so an unchanged row is not rewritten); ``DO NOTHING`` when the key is
    every column. The key is ``arbiter``: a seeded table's mapped ids."""
    key = _list([sql.Identifier(c) for c in merge.arbiter])
    changing = [c for c in merge.columns if c.target not in merge.arbiter]
    if not changing:
        return sql.SQL("ON CONFLICT ({}) DO NOTHING").format(key)
    return sql.SQL("ON CONFLICT ({key}) DO UPDATE SET ({cols}) = ROW({new}) WHERE {differ}").format(
        key=key,
        cols=_list([sql.Identifier(c.target) for c in changing]),
        new=_list([sql.SQL("EXCLUDED.{}").format(sql.Identifier(c.target)) for c in changing]),
        differ=_values_differ(changing, "t", "excluded"),
    )


def _staged_as_target(merge: TableMerge, staging: Staging) -> sql.Composed:
    """The staged rows, each column cast to the target's type under the target's name."""
    return sql.SQL("(SELECT {columns} FROM {staged} s)").format(
        columns=_list(
            [
                sql.SQL("{} AS {}").format(_cast(c, "s"), sql.Identifier(c.target))
                for c in merge.columns
            ]
        ),
        staged=ddl.qualified(staging, merge.staged),
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


def _row_hash(merge: TableMerge, alias: str) -> sql.Composed:
    """The hash of row ``alias``'s merged columns, as recorded (see the module's doc)."""
    return sql.SQL("hash_record_extended(ROW({}), 0)").format(
        _list([_comparable(c, alias) for c in merge.columns])
    )


def _row_key(merge: TableMerge, alias: str) -> sql.Composed:
    """Row ``alias``'s key as recorded: the binary form of the ROW of its key columns
    (``record_send``), which no session setting changes (a date's text depends on DateStyle)."""
    return sql.SQL("record_send(ROW({}))").format(
        _list(
            [sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(k)) for k in merge.key]
        )
    )


def _key_json(merge: TableMerge, alias: str) -> sql.Composed:
    """Row ``alias``'s key as a JSON object by target column name, as reports show keys."""
    return sql.SQL("jsonb_build_object({})").format(
        _list(
            [
                sql.SQL("{}, {}.{}").format(
                    sql.Literal(k), sql.Identifier(alias), sql.Identifier(k)
                )
                for k in merge.key
            ]
        )
    )


@dataclass(frozen=True)
class Comparison:
    """The staged rows against the target's, by key."""

    missing: int  # staged rows whose key the target lacks
    differing: int  # staged rows the target holds with other values, not kept on purpose
    kept: int  # staged rows the target holds with other values, kept on purpose
    extra: int  # target rows whose key no staged row has: the application's own
    held: int = 0  # staged rows the target holds with equal values

    @property
    def not_held(self) -> int:
        """Staged rows the target does not hold, other than those kept on purpose."""
        return self.missing + self.differing


def prove_merged(
    pg: psycopg.Connection,
    merge: TableMerge,
    staging: Staging,
    kept: sql.Composable | None = None,
) -> Comparison:
    """The staged source rows against the target's, in one hash join of the two tables on
    the key. Staged keys are unique (their primary key was validated in staging) and so are
    the target's (the key is one of its unique keys), so a staged row is held exactly when
    the target row with its key has equal values in every merged column: this is the
    merge's proof, and how a merged table is re-verified. ``kept`` (a condition on the
    staged row ``s`` and the target's ``t``, asked only of rows that differ) marks the rows
    the target keeps on purpose: counted apart, never as rows not held."""
    key = sql.Identifier(merge.key[0])  # NOT NULL in the target: NULL here = no such row
    differing = sql.SQL("'differing'")
    if kept is not None:
        differing = sql.SQL("CASE WHEN {} THEN 'kept' ELSE 'differing' END").format(kept)
    statement = sql.SQL(
        "SELECT CASE WHEN t.{key} IS NULL THEN 'missing' WHEN s.{key} IS NULL THEN 'extra' "
        "WHEN {differ} THEN {differing} END, count(*) "
        "FROM {staged} s FULL JOIN {target} t ON {same_key} GROUP BY 1"
    ).format(
        key=key,
        differ=_values_differ(merge.columns, "s", "t"),
        differing=differing,
        staged=_staged_as_target(merge, staging),
        target=_target(merge),
        same_key=_same_key(merge, "s", "t"),
    )
    counts = dict(pg.execute(statement).fetchall())
    return Comparison(
        missing=counts.get("missing", 0),
        differing=counts.get("differing", 0),
        kept=counts.get("kept", 0),
        extra=counts.get("extra", 0),
        held=counts.get(None, 0),
    )


def _compared(
    pg: psycopg.Connection, merge: TableMerge, staging: Staging, staged_rows: int
) -> Comparison:
    """The comparison before the merge writes (``prove_merged``), without reading the
    staged rows when the target table holds no row at all, as in an application's first
    merge: every staged row is then missing (``staged_rows``: how many were staged). A
    different count of rows inserted then is caught: ``merge_table`` proves them again."""
    empty = sql.SQL("SELECT NOT EXISTS (SELECT FROM {})").format(_target(merge))
    if pg.execute(empty).fetchone()[0]:
        return Comparison(missing=staged_rows, differing=0, kept=0, extra=0)
    return prove_merged(pg, merge, staging)


SHORT_VALUE = 40  # characters of a value shown in a divergence


def differences(
    pg: psycopg.Connection,
    merge: TableMerge,
    staging: Staging,
    kept: sql.Composable | None = None,
    limit: int = SAMPLE_KEYS,
) -> list[dict[str, object]]:
    """The first ``limit`` staged source rows (in key order) that the target does not hold
    with equal values (but for those ``kept`` marks, as ``prove_merged`` counts them),
    found by ``prove_merged``'s join: each its key and either "missing in target" or, per
    column that differs, the source and target values as text (cut to ``SHORT_VALUE``
    characters). Names are the source's, and each entry has the shape of the replace-mode
    locator's (``checksum.locate``), so that reports show both alike."""
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
        "ON {same_key} WHERE t.{key} IS NULL OR ({differ} AND NOT coalesce({kept}, false)) "
        "ORDER BY {keys} LIMIT {limit}"
    ).format(
        keys=_list(keys),
        key=sql.Identifier(merge.key[0]),
        shown=_list(shown),
        staged=_staged_as_target(merge, staging),
        target=_target(merge),
        same_key=_same_key(merge, "s", "t"),
        differ=_values_differ(merge.columns, "s", "t"),
        kept=kept if kept is not None else sql.SQL("false"),
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


def recorded_unchanged(pg: psycopg.Connection, merge: TableMerge) -> sql.Composable:
    """The ``kept`` condition of re-verifying a merged table: the staged row is the one the
    last merge recorded, so a target row that differs from it was changed by the
    application since, and a merge would keep it."""
    table_id = bookkeeping.merged_table(pg, merge.target.schema, merge.target.name)
    return sql.SQL("{} = {}").format(
        _row_hash(merge, "s"), bookkeeping.recorded_hash(table_id, _row_key(merge, "s"))
    )


def _upsert(
    pg: psycopg.Connection, merge: TableMerge, staging: Staging, kept: sql.Composable | None
) -> int:
    """How many staged rows were written by upserting those the target does not hold with
    equal values (an unchanged row is neither rewritten nor even offered to ``ON
    CONFLICT``, whose per-row index probe is the expensive part), leaving out the rows
    ``kept`` (a condition on the staged row ``s``). Which were inserted is known from the
    comparison before (its ``missing`` rows): a partitioned table has no ``xmax`` to
    return."""
    statement = sql.SQL(
        "WITH written AS (INSERT INTO {target} AS t ({cols}) OVERRIDING SYSTEM VALUE "
        "SELECT * FROM {staged} s WHERE NOT EXISTS (SELECT 1 FROM {target} u WHERE {same_key} "
        "AND NOT {differ}) {kept}{conflict} RETURNING 1) SELECT count(*) FROM written"
    ).format(
        target=_target(merge),
        cols=_list([sql.Identifier(c.target) for c in merge.columns]),
        staged=_staged_as_target(merge, staging),
        same_key=_same_key(merge, "s", "u"),
        differ=_values_differ(merge.columns, "s", "u"),
        kept=sql.SQL("AND NOT {} ").format(kept) if kept is not None else sql.SQL(""),
        conflict=_on_conflict(merge),
    )
    return int(pg.execute(statement).fetchone()[0])


def _insert_all(pg: psycopg.Connection, merge: TableMerge, staging: Staging) -> int | None:
    """How many rows a plain ``INSERT`` of every staged row wrote, into a target that held
    none of their keys when compared; None when the application inserted one of those keys
    since (the merge's ROW EXCLUSIVE lock lets it): the savepoint then undoes the insert and
    the caller upserts instead."""
    statement = sql.SQL(
        "INSERT INTO {target} ({cols}) OVERRIDING SYSTEM VALUE SELECT * FROM {staged} s"
    ).format(
        target=_target(merge),
        cols=_list([sql.Identifier(c.target) for c in merge.columns]),
        staged=_staged_as_target(merge, staging),
    )
    try:
        with pg.transaction():
            return pg.execute(statement).rowcount
    except psycopg.errors.UniqueViolation:
        return None


@dataclass(frozen=True)
class Contested:
    """The rows the target holds with other values that the application changed since the
    last merge: alone, or the source too (conflicts)."""

    application: int = 0  # the source's row is the one recorded: kept
    conflicts: int = 0  # both changed, or no record: settled by on_conflict
    conflict_keys: tuple[object, ...] = ()  # the first ones, as JSON objects

    def kept(self, on_conflict: OnConflict) -> int:
        """How many of them the merge keeps as the target holds them."""
        return self.application + (0 if on_conflict == "source" else self.conflicts)


def _contest(
    pg: psycopg.Connection,
    merge: TableMerge,
    staging: Staging,
    run_id: str,
    on_conflict: OnConflict,
) -> Contested:
    """Record (``bookkeeping.record_application_changes``) every staged row the target
    holds with other values, except those only the source changed since the last merge
    (target's hash = recorded != staged's), which the upsert writes; each a ``conflict``
    unless only the application changed it (staged's hash = recorded != target's), and
    ``kept`` but for a conflict under ``on_conflict: source``. A key no merge recorded is a
    conflict: no one can tell which side wrote it."""
    table_id = bookkeeping.merged_table(pg, merge.target.schema, merge.target.name)
    contested = sql.SQL(
        "SELECT {row_key} AS row_key, {key} AS key, conflict, {kept} AS kept FROM ("
        "SELECT *, NOT coalesce(hs = m AND ht <> m, false) AS conflict FROM ("
        "SELECT {s_keys}, {hs} AS hs, {ht} AS ht, {m} AS m FROM {staged} s "
        "JOIN {target} t ON {same_key} WHERE {differ} OFFSET 0) d "
        "WHERE NOT coalesce(ht = m AND hs <> m, false)) c"
    ).format(
        row_key=_row_key(merge, "c"),
        key=_key_json(merge, "c"),
        kept=sql.SQL("NOT conflict" if on_conflict == "source" else "true"),
        s_keys=_list([sql.SQL("s.{}").format(sql.Identifier(k)) for k in merge.key]),
        hs=_row_hash(merge, "s"),
        ht=_row_hash(merge, "t"),
        m=bookkeeping.recorded_hash(table_id, _row_key(merge, "s")),
        staged=_staged_as_target(merge, staging),
        target=_target(merge),
        same_key=_same_key(merge, "s", "t"),
        differ=_values_differ(merge.columns, "s", "t"),
    )
    application, conflicts, sample = bookkeeping.record_application_changes(
        pg, run_id, merge.target.schema, merge.target.name, contested
    )
    return Contested(application, conflicts, tuple(sample))


def _from_source(merge: TableMerge, staging: Staging) -> sql.Composed:
    """``EXISTS`` a staged source row with the key of the target row ``t``."""
    return sql.SQL("EXISTS (SELECT 1 FROM {staged} s WHERE {same_key})").format(
        staged=_staged_as_target(merge, staging), same_key=_same_key(merge, "s", "t")
    )


def merged_orphans(
    pg: psycopg.Connection,
    plan: MergePlan,
    merge: TableMerge,
    foreign_keys: tuple[ForeignKey, ...],
    staging: Staging,
) -> dict[str, int]:
    """Per source foreign key whose parent table is merged too, how many of the rows the
    source gave the target table (their keys are staged) point at no parent row of the
    target's parent table (``checks.parents`` with the target alone: names mapped as the
    merge maps them; a NULL part is no reference, as in PostgreSQL's MATCH SIMPLE)."""
    columns = {c.source: c for c in merge.columns}
    orphans = {}
    for fk in foreign_keys:
        found = parents(pg, fk, (), plan) if fk.ref_table in plan.tables else None
        if found is None or not set(fk.columns) <= set(columns):
            continue
        refs = [sql.SQL("t.{}").format(sql.Identifier(columns[c].target)) for c in fk.columns]
        statement = sql.SQL("SELECT count(*) FROM {target} t WHERE {from_source} AND {missing}")
        label = f"({', '.join(fk.columns)}) -> {fk.ref_table}"
        orphans[label] = pg.execute(
            statement.format(
                target=_target(merge),
                from_source=_from_source(merge, staging),
                missing=found.missing(refs),
            )
        ).fetchone()[0]
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


def _changed_by(merge: TableMerge) -> str:
    """What may have changed rows on their way into the target table."""
    if merge.target.triggers:
        return f"changed by its triggers? ({', '.join(merge.target.triggers)})"
    return "a rule of the target changed them?"


def merge_table(
    pg: psycopg.Connection,
    merge: TableMerge,
    staging: Staging,
    on_conflict: OnConflict,
    staged_rows: int,
    run_id: str,
    *,
    record: bool,
) -> dict[str, object]:
    """Merge one staged table; its counts for the report. With ``record`` (not a dry run),
    record every staged row as merged by ``run_id``. An SQL error becomes a ``TargetError``
    naming the table, as do conflicts under ``on_conflict: fail`` (the caller's transaction
    then rolls back)."""
    target = f"{merge.target.schema}.{merge.target.name}"
    try:
        with pg.transaction():  # a savepoint, so the error can be read and re-raised cleanly
            proof = _compared(pg, merge, staging, staged_rows)
            contested, kept = Contested(), None
            if proof.differing:
                contested = _contest(pg, merge, staging, run_id, on_conflict)
                if contested.conflicts and on_conflict == "fail":
                    raise TargetError(
                        f"merge of table {merge.source} into {target} stopped: "
                        f"{contested.conflicts} rows were changed both in the source and by "
                        "the application since the last merge (keys "
                        f"{named_keys(contested.conflict_keys, contested.conflicts)}) and "
                        "on_conflict is fail: set on_conflict to target (keep the "
                        "application's rows) or source (write the source's)"
                    )
                kept = bookkeeping.kept_by_merge(
                    run_id, merge.target.schema, merge.target.name, _row_key(merge, "s")
                )
            inserted = updated = 0
            first = proof.missing and not (proof.held or proof.differing)
            if first and (inserted := _insert_all(pg, merge, staging)) is not None:
                if inserted == proof.missing and not existing.rewrites_rows(
                    pg, merge.target.schema, merge.target.name
                ):  # it holds the staged rows as cast: see the module's doc
                    proof = Comparison(0, 0, 0, proof.extra, held=inserted)
                else:
                    proof = prove_merged(pg, merge, staging)
            elif proof.not_held > contested.kept(on_conflict):  # else nothing to write
                inserted = proof.missing
                updated = _upsert(pg, merge, staging, kept) - inserted
                proof = prove_merged(pg, merge, staging, kept)
            elif kept is not None:  # every differing row is kept: the comparison is the proof
                proof = Comparison(0, 0, proof.differing, proof.extra)
            # Rows not held after a write (before one, there was nothing to write).
            unproven = differences(pg, merge, staging, kept) if proof.not_held else []
            if record:
                bookkeeping.record_merged(
                    pg,
                    merge.target.schema,
                    merge.target.name,
                    run_id,
                    sql.SQL("SELECT {} AS row_key, {} AS row_hash FROM {} s").format(
                        _row_key(merge, "s"),
                        _row_hash(merge, "s"),
                        _staged_as_target(merge, staging),
                    ),
                )
    except psycopg.Error as exc:
        if isinstance(exc, LOCK_WAITS) or connection_lost(exc):
            raise  # the caller waits and tries again (``locks``, ``pipeline._retried``)
        raise TargetError(
            f"merge of table {merge.source} into {target} failed: {' '.join(str(exc).split())}"
        ) from None
    if proof.not_held:
        raise TargetError(
            f"merge of table {merge.source} into {target} is not proven: {proof.not_held} "
            "source rows are not in the target with equal values after the upsert "
            f"({divergences(unproven)}: {_changed_by(merge)}); nothing of the merge was kept"
        )
    counts: dict[str, object] = {
        "inserted": inserted,
        "updated": updated,
        "unchanged": staged_rows - inserted - updated - proof.kept,
        "extra_in_target": proof.extra,
        "kept_application_changes": contested.application,
        "conflicts": contested.conflicts,
    }
    if contested.conflicts:
        counts["conflict_keys"] = list(contested.conflict_keys)
        counts["on_conflict"] = on_conflict
    return counts

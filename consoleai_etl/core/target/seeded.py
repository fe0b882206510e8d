"""Seeded tables in merge mode: the lookup rows an application inserts at install (roles,
content types, permissions, statuses) are the legacy file's rows under other ids.

A table is seeded when ``merge_keys`` names a natural key while the target's one-column
primary key (its surrogate id) is filled from the source (``merge_plan._key``). Its staged
rows are matched with the target's on the natural key, which gives each source id the
target's id (``map_ids``); a row no target row matches is inserted with its own id when the
target does not use it, else with a new id after the largest of the target's ids, the
source's ids and the id sequence's current value (no ``nextval``: a dry run consumes
nothing; the merge then moves the sequence past it, as for any merged id). Every staged
column that holds the seeded table's ids (the seeded table's own, and each child's foreign
key, declared in the source or in the target) is then rewritten through that mapping
(``translate``), so that the upsert and its proof work on the application's ids.

The mappings are temporary tables of the session, dropped at its commit; the staged tables
are rewritten in place, after their own keys and foreign keys (which proved the source's
ids in staging, and would refuse the ids changing one row at a time) are dropped. A
natural key two source rows share, or that matches two target rows, stops the merge
naming both: it cannot tell which row is meant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from consoleai_etl.core.errors import TargetError
from consoleai_etl.core.plan.merge_plan import MergeColumn, MergePlan, TableMerge
from consoleai_etl.core.plan.names import pg_identifier
from consoleai_etl.core.source.catalog import Table
from consoleai_etl.core.target import ddl
from consoleai_etl.core.target.merge import _staged_as_target, _target
from consoleai_etl.core.target.staging import Staging


@dataclass(frozen=True)
class Reference:
    """A staged column holding the ids of a seeded table."""

    table: str  # the source table whose staged column it is
    column: MergeColumn
    parent: str  # the seeded source table

    @property
    def label(self) -> str:
        return f"{self.table}.{self.column.source}"


@dataclass(frozen=True)
class Mapped:
    """A seeded table's staged rows, matched with the target's on the natural key."""

    matched: int  # a target row has the natural key: the source's id becomes its id
    inserted: int  # no target row has it: inserted
    new_ids: int  # of those, rows whose id the target uses for another row: a new id


def _column(merge: TableMerge, target: str) -> MergeColumn | None:
    return next((c for c in merge.columns if c.target == target), None)


def _surrogate(merge: TableMerge) -> MergeColumn:
    """A seeded table's id column (the plan makes a table seeded only when the source
    fills it)."""
    column = _column(merge, merge.surrogate or "")
    assert column is not None
    return column


# The target's one-column foreign keys between tables of the schema (partitions' clones left
# out): (child table, child column, parent table, parent column).
_TARGET_FKS = """
SELECT c.relname, ca.attname, p.relname, pa.attname
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class p ON p.oid = k.confrelid
JOIN pg_attribute ca ON ca.attrelid = k.conrelid AND ca.attnum = k.conkey[1]
JOIN pg_attribute pa ON pa.attrelid = k.confrelid AND pa.attnum = k.confkey[1]
WHERE k.contype = 'f' AND k.conparentid = 0 AND cardinality(k.conkey) = 1
  AND n.nspname = %s AND p.relnamespace = n.oid
"""


def references(pg: psycopg.Connection, plan: MergePlan, tables: Iterable[Table]) -> list[Reference]:
    """Every merged column that holds a seeded table's ids: the seeded table's own id, and
    each one-column foreign key to it, from the source's catalog (``tables``) or the
    target's (a legacy file often declares none). A column said to hold two seeded
    tables' ids is refused."""
    seeded = {name: m for name, m in plan.tables.items() if m.surrogate}
    found: dict[tuple[str, str], Reference] = {}

    def add(table: str, column: MergeColumn | None, parent: str) -> None:
        if column is None:
            return
        known = found.setdefault((table, column.target), Reference(table, column, parent))
        if known.parent != parent:
            raise TargetError(
                f"column {known.label} references two seeded "
                f"tables ({known.parent}, {parent}): leave one out of merge_keys"
            )

    for name, merge in seeded.items():
        add(name, _surrogate(merge), name)
    for table in tables:
        child = plan.tables.get(table.name)
        if child is None:
            continue
        for fk in table.foreign_keys:
            parent = seeded.get(fk.ref_table)
            if parent is None or fk.ref_columns != (_surrogate(parent).source,):
                continue
            column = next((c for c in child.columns if (c.source,) == fk.columns), None)
            add(table.name, column, fk.ref_table)
    by_target = {(m.target.name, m.surrogate): name for name, m in seeded.items()}
    for child_table, child_column, parent_table, parent_column in pg.execute(
        _TARGET_FKS, (plan.schema,)
    ):
        parent = by_target.get((parent_table, parent_column))
        if parent is None:
            continue
        for name, child in plan.tables.items():
            if child.target.name == child_table:
                add(name, _column(child, child_column), parent)
    return list(found.values())


def ordered(plan: MergePlan, refs: Sequence[Reference]) -> list[str]:
    """The seeded tables, each after the seeded tables whose ids it holds (its natural key
    may be one: a permission's content type), so that those are translated before it is
    matched; a cycle among them is refused."""
    waiting = {
        name: {r.parent for r in refs if r.table == name and r.parent != name}
        for name, m in plan.tables.items()
        if m.surrogate
    }
    order: list[str] = []
    while waiting:
        ready = sorted(name for name, parents in waiting.items() if parents <= set(order))
        if not ready:
            raise TargetError(
                "the seeded tables "
                f"{', '.join(sorted(waiting))} hold each other's ids: leave one out of merge_keys"
            )
        order += ready
        for name in ready:
            del waiting[name]
    return order


def needed(plan: MergePlan, refs: Sequence[Reference], table: str) -> list[str]:
    """The seeded tables whose mappings translating ``table`` takes (itself when seeded,
    those whose ids it holds, and theirs), in ``ordered``'s order."""
    wanted, todo = set(), [table]
    while todo:
        name = todo.pop()
        for r in refs:
            if r.table == name and r.parent not in wanted:
                wanted.add(r.parent)
                todo.append(r.parent)
    return [name for name in ordered(plan, refs) if name in wanted]


def _map_name(merge: TableMerge) -> sql.Identifier:
    return sql.Identifier(pg_identifier(f"seeded_ids_{merge.staged}"))


def _key_values(merge: TableMerge, alias: str) -> sql.Composed:
    return sql.SQL("ROW({})::text").format(
        sql.SQL(", ").join(
            sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(k)) for k in merge.key
        )
    )


def _refuse_duplicates(pg: psycopg.Connection, merge: TableMerge, staging: Staging) -> None:
    """A natural key two staged rows share, or that matches two target rows: named."""
    key = ", ".join(merge.key)
    where = f"{merge.source} -> {merge.target.schema}.{merge.target.name}"
    surrogate = sql.Identifier(merge.surrogate or "")
    values = {"key": _key_values(merge, "s"), "id": surrogate}
    twice = pg.execute(
        sql.SQL(
            "SELECT {key}, array_agg(s.{id}::text ORDER BY s.{id}) FROM {staged} s "
            "GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 1"
        ).format(staged=_staged_as_target(merge, staging), **values)
    ).fetchone()
    if twice:
        raise TargetError(
            f"{where}: source rows {merge.surrogate} "
            f"{' and '.join(twice[1])} have the same natural key ({key}) = {twice[0]}: "
            f"merge_keys.{merge.source} must identify one row; correct the source"
        )
    twice = pg.execute(
        sql.SQL(
            "SELECT {tkey}, array_agg(t.{id}::text ORDER BY t.{id}) FROM {target} t "
            "WHERE EXISTS (SELECT 1 FROM {staged} s WHERE {tkey} = {key}) "
            "GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 1"
        ).format(
            staged=_staged_as_target(merge, staging),
            target=_target(merge),
            tkey=_key_values(merge, "t"),
            key=_key_values(merge, "s"),
            id=surrogate,
        )
    ).fetchone()
    if twice:
        raise TargetError(
            f"{where}: the natural key ({key}) = {twice[0]} "
            f"matches two target rows, {merge.surrogate} {' and '.join(twice[1])}: make "
            f"({key}) unique in the target, or merge {merge.source} on its primary key"
        )


def map_ids(pg: psycopg.Connection, merge: TableMerge, staging: Staging) -> Mapped:
    """Match the seeded table's staged rows with the target's on the natural key, into a
    temporary table (source_id, target_id, matched) dropped at commit. Raises
    ``TargetError`` for a natural key that names two rows (``_refuse_duplicates``) and for
    a new id a non-integer id column cannot be given."""
    _refuse_duplicates(pg, merge, staging)
    surrogate = _surrogate(merge)
    ids = {"map": _map_name(merge), "id": sql.Identifier(surrogate.target)}
    same_key = sql.SQL(" AND ").join(
        sql.SQL("t.{k} = s.{k}").format(k=sql.Identifier(k)) for k in merge.key
    )
    pg.execute(
        sql.SQL(
            "CREATE TEMP TABLE {map} ON COMMIT DROP AS SELECT s.{id} AS source_id, "
            "t.{id} AS target_id, t.{id} IS NOT NULL AS matched "
            "FROM {staged} s LEFT JOIN {target} t ON {same_key}"
        ).format(
            staged=_staged_as_target(merge, staging),
            target=_target(merge),
            same_key=same_key,
            **ids,
        )
    )
    pg.execute(  # an unmatched row keeps its id where the target does not use it
        sql.SQL(
            "UPDATE {map} m SET target_id = source_id WHERE NOT matched "
            "AND NOT EXISTS (SELECT 1 FROM {target} t WHERE t.{id} = m.source_id)"
        ).format(target=_target(merge), **ids)
    )
    colliding = pg.execute(
        sql.SQL("SELECT count(*), min(source_id::text) FROM {map} WHERE target_id IS NULL").format(
            **ids
        )
    ).fetchone()
    if colliding[0]:
        _new_ids(pg, merge, surrogate, colliding[1], ids)
    pg.execute(sql.SQL("ALTER TABLE {map} ADD PRIMARY KEY (source_id)").format(**ids))
    pg.execute(sql.SQL("ANALYZE {map}").format(**ids))
    matched, inserted = pg.execute(
        sql.SQL(
            "SELECT count(*) FILTER (WHERE matched), count(*) FILTER (WHERE NOT matched) FROM {map}"
        ).format(**ids)
    ).fetchone()
    return Mapped(matched, inserted, colliding[0])


def _new_ids(
    pg: psycopg.Connection,
    merge: TableMerge,
    surrogate: MergeColumn,
    first: str,
    ids: Mapping[str, sql.Composable],
) -> None:
    """Give the unmatched rows whose id the target uses new ids, after the largest of the
    target's ids, the source's and the sequence's current value, in source id order."""
    if surrogate.staged_type.kind != "bigint":
        raise TargetError(
            f"{merge.source}: source row {surrogate.target} "
            f"{first} matches no target row on ({', '.join(merge.key)}), and the target uses "
            f"its {surrogate.target} for another row; a {surrogate.target_type} id cannot be "
            "given a new value: change the id in the source"
        )
    sequence = merge.target.column(surrogate.target).sequence
    last = (
        sql.SQL(
            "(SELECT coalesce(pg_sequence_last_value({s}::regclass), seqstart - 1) "
            "FROM pg_sequence WHERE seqrelid = {s}::regclass)"
        ).format(s=sql.Literal(sequence))
        if sequence
        else sql.SQL("NULL")
    )
    pg.execute(
        sql.SQL(
            "UPDATE {map} m SET target_id = base + n FROM (SELECT source_id, row_number() "
            "OVER (ORDER BY source_id) AS n FROM {map} WHERE target_id IS NULL) fresh, "
            "(SELECT greatest((SELECT max({id}) FROM {target}), "
            "(SELECT max(source_id) FROM {map}), {last}) AS base) b "
            "WHERE m.source_id = fresh.source_id"
        ).format(target=_target(merge), last=last, **ids)
    )


def _drop_constraints(pg: psycopg.Connection, staging: Staging, staged: str) -> None:
    """The staged table's keys, unique indexes and foreign keys, and those of other staged
    tables that reference it: they proved the source's ids in staging, and would refuse
    ids changing one row at a time."""
    relation = pg.execute(
        "SELECT %s::regclass::oid", (ddl.qualified(staging, staged).as_string(pg),)
    ).fetchone()[0]
    for (statement,) in pg.execute(
        "SELECT format('ALTER TABLE %%s DROP CONSTRAINT %%I', conrelid::regclass, conname) "
        "FROM pg_constraint WHERE (conrelid = %(t)s OR confrelid = %(t)s) "
        "AND contype IN ('f', 'p', 'u', 'x') ORDER BY contype <> 'f'",
        {"t": relation},
    ).fetchall():
        pg.execute(statement)
    for (statement,) in pg.execute(
        "SELECT format('DROP INDEX %%s', indexrelid::regclass) FROM pg_index "
        "WHERE indrelid = %(t)s AND indisunique",
        {"t": relation},
    ).fetchall():
        pg.execute(statement)


def _rewrite(
    pg: psycopg.Connection,
    merge: TableMerge,
    staging: Staging,
    refs: Sequence[Reference],
    plan: MergePlan,
) -> dict[str, int]:
    """Rewrite each of ``refs`` (columns of ``merge``'s staged table) through its seeded
    table's mapping; how many values each changed, by label."""
    staged = ddl.qualified(staging, merge.staged)
    changed = {}
    for ref in refs:
        changed[ref.label] = pg.execute(
            sql.SQL(
                "SELECT count(*) FROM {staged} s JOIN {map} m ON m.source_id = s.{col} "
                "WHERE m.target_id <> s.{col}"
            ).format(
                staged=staged,
                map=_map_name(plan.tables[ref.parent]),
                col=sql.Identifier(ref.column.staged),
            )
        ).fetchone()[0]
    moving = [r for r in refs if changed[r.label]]
    if not moving:
        return changed
    _drop_constraints(pg, staging, merge.staged)
    lookups = [
        (
            sql.Identifier(r.column.staged),
            sql.SQL("(SELECT m.target_id FROM {map} m WHERE m.source_id = s.{col})").format(
                map=_map_name(plan.tables[r.parent]), col=sql.Identifier(r.column.staged)
            ),
        )
        for r in moving
    ]
    pg.execute(
        sql.SQL("UPDATE {staged} s SET {sets} WHERE {any}").format(
            staged=staged,
            sets=sql.SQL(", ").join(
                sql.SQL("{c} = coalesce({v}, s.{c})").format(c=c, v=v) for c, v in lookups
            ),
            any=sql.SQL(" OR ").join(sql.SQL("{v} <> s.{c}").format(c=c, v=v) for c, v in lookups),
        )
    )
    return changed


def translate(
    pg: psycopg.Connection,
    plan: MergePlan,
    staging: Staging,
    refs: Sequence[Reference],
    tables: Iterable[str],
) -> dict[str, dict[str, object]]:
    """Map every seeded table among ``tables`` (their staged rows are in ``staging``) and
    rewrite every reference to them among ``tables``: each seeded table's own references
    to other seeded tables first (its natural key may hold one), then its ids, then the
    other tables. Returns per seeded table its counts for the report: ``matched``,
    ``inserted``, ``new_ids``, ``references_rewritten`` (values of other columns changed)
    and ``rewritten_columns`` (per column)."""
    tables = list(tables)
    outside = sorted(
        (r.label, r.parent) for r in refs if r.table in tables and r.parent not in tables
    )
    if outside:
        label, parent = outside[0]
        raise TargetError(
            f"{label} holds ids of the seeded table {parent}, "
            f"which this run does not merge: select {parent} too"
        )
    counts: dict[str, dict[str, object]] = {}
    rewritten: dict[str, dict[str, int]] = {}

    def rewrite(name: str, parents: Callable[[str], bool]) -> None:
        mine = [r for r in refs if r.table == name and parents(r.parent)]
        for label, n in _rewrite(pg, plan.tables[name], staging, mine, plan).items():
            ref = next(r for r in mine if r.label == label)
            if not (ref.table == ref.parent and ref.column == _surrogate(plan.tables[name])):
                rewritten.setdefault(ref.parent, {})[label] = n  # not the table's own ids

    seeded = [name for name in ordered(plan, refs) if name in tables]
    for name in seeded:
        rewrite(name, lambda parent, name=name: parent != name and parent in counts)
        mapped = map_ids(pg, plan.tables[name], staging)
        counts[name] = {"key": list(plan.tables[name].key), **mapped.__dict__}
        rewrite(name, lambda parent, name=name: parent == name)
    for name in tables:
        if name not in counts:
            rewrite(name, lambda parent: parent in counts)
    for name, table_counts in counts.items():
        columns = rewritten.get(name, {})
        table_counts["references_rewritten"] = sum(columns.values())
        table_counts["rewritten_columns"] = columns
    return counts

"""What an application's existing tables in the target schema look like (merge mode).

Merge mode loads into tables this tool did not create, so it reads them from the catalog
instead of planning them: each column's type as ``format_type`` prints it, whether it is
NOT NULL, has a default, is an identity or generated column, its sequence (identity or
serial, ``pg_get_serial_sequence``), its type as this tool loads it (``TypeReader``:
enums with their labels, domains over their base, arrays of their element, the rest by
name through the type registry), the table's primary key and unique keys (what an
``ON CONFLICT`` can name) and its foreign keys (the order of the merge). Partitions are not
tables of their own here: their partitioned table is. Read only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from consoleai_etl.core.types import arrays, domains, enums, registry
from consoleai_etl.core.types.pgtype import PgType


@dataclass(frozen=True)
class ExistingColumn:
    name: str
    type: str  # format_type: integer, character varying(20), timestamp with time zone, ...
    not_null: bool
    has_default: bool
    identity: bool
    generated: bool
    sequence: str | None  # qualified name of its identity or serial sequence
    pg_type: PgType | None = field(default=None, compare=False)  # None: not loadable

    @property
    def fills_itself(self) -> bool:
        """A value comes without the source: a default, an identity or a generated column."""
        return self.has_default or self.identity or self.generated


@dataclass(frozen=True)
class ExistingForeignKey:
    """A foreign key of an application's table: merge mode writes its tables in the order
    these keys need (``merge_order``)."""

    name: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    deferrable: bool  # can wait for the end of the transaction (SET CONSTRAINTS ... DEFERRED)


@dataclass(frozen=True)
class ExistingTable:
    schema: str
    name: str
    columns: tuple[ExistingColumn, ...]
    primary_key: tuple[str, ...]
    unique_keys: tuple[tuple[str, ...], ...]  # every unique constraint or plain unique index
    # Row-level security policies apply to this session's role: its reads and writes of the
    # table would be filtered (merge mode refuses it; ``merge_plan``).
    policies_apply: bool = False
    triggers: tuple[str, ...] = ()  # its and its partitions' enabled triggers, for a diagnosis
    foreign_keys: tuple[ExistingForeignKey, ...] = ()

    def column(self, name: str) -> ExistingColumn:
        return next(c for c in self.columns if c.name == name)


_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       a.atthasdef AND a.attgenerated = '', a.attidentity <> '', a.attgenerated <> '',
       pg_get_serial_sequence(c.oid::regclass::text, a.attname), a.atttypid, a.atttypmod
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE c.oid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""

_KEYS = """
SELECT i.indisprimary, array_agg(a.attname ORDER BY k.ord)
FROM pg_index i CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
GROUP BY i.indexrelid, i.indisprimary ORDER BY NOT i.indisprimary, i.indexrelid
"""


# A partitioned table's key is one constraint (its copies on partitions have a parent).
_FOREIGN_KEYS = """
SELECT k.conname, ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
       JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i),
       n.nspname, r.relname, k.condeferrable
FROM pg_constraint k JOIN pg_class r ON r.oid = k.confrelid
JOIN pg_namespace n ON n.oid = r.relnamespace
WHERE k.conrelid = %s AND k.contype = 'f' AND k.conparentid = 0 ORDER BY k.conname
"""

_TYPE = """
SELECT t.typtype, t.typcategory = 'A', t.typelem, t.typbasetype, t.typtypmod,
       t.typnotnull OR EXISTS (SELECT 1 FROM pg_constraint k WHERE k.contypid = t.oid),
       ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid
             ORDER BY e.enumsortorder)
FROM pg_type t WHERE t.oid = %s
"""


class TypeReader:
    """A type of the target as this tool loads it, read from the catalog once per type."""

    def __init__(self, pg: psycopg.Connection) -> None:
        self.pg = pg
        self.known: dict[tuple[int, int], PgType | None] = {}

    def __call__(self, oid: int, modifier: int) -> PgType | None:
        if (oid, modifier) not in self.known:
            self.known[oid, modifier] = self._read(oid, modifier)
        return self.known[oid, modifier]

    def _read(self, oid: int, modifier: int) -> PgType | None:
        name = self.pg.execute("SELECT format_type(%s, %s)", (oid, modifier)).fetchone()[0]
        kind, is_array, element, base, base_modifier, constrained, labels = self.pg.execute(
            _TYPE, (oid,)
        ).fetchone()
        if kind == "e":
            return enums.enum_type(name, tuple(labels))
        if kind == "d":
            base_type = self(base, base_modifier)
            return base_type and domains.domain_type(name, base_type, constrained)
        if is_array:
            element_type = self(element, modifier)
            return element_type and arrays.array_type(element_type)
        return registry.parse(name)


def existing_tables(pg: psycopg.Connection, schema: str) -> dict[str, ExistingTable]:
    """Every ordinary or partitioned table of ``schema`` (not its partitions), by name."""
    rows = pg.execute(_TABLES, (schema,)).fetchall()
    types = TypeReader(pg)
    return {row[1]: _table(pg, schema, *row, types) for row in rows}


# As PostgreSQL decides it: policies apply unless the role is a superuser, has BYPASSRLS,
# or owns the table and the table does not FORCE them.
_TABLES = """
SELECT c.oid, c.relname,
       c.relrowsecurity AND NOT r.rolsuper AND NOT r.rolbypassrls
       AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE')),
       ARRAY(SELECT DISTINCT t.tgname::text FROM pg_trigger t
             WHERE (t.tgrelid = c.oid OR t.tgrelid IN (SELECT relid FROM pg_partition_tree(c.oid)))
             AND NOT t.tgisinternal AND t.tgenabled <> 'D' ORDER BY 1)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_roles r ON r.rolname = current_user
WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition
"""


def _table(
    pg: psycopg.Connection,
    schema: str,
    oid: int,
    name: str,
    policies_apply: bool,
    triggers: list[str],
    types: TypeReader,
) -> ExistingTable:
    columns = tuple(
        ExistingColumn(*row[:7], pg_type=types(*row[7:])) for row in pg.execute(_COLUMNS, (oid,))
    )
    keys = pg.execute(_KEYS, (oid,)).fetchall()
    primary = next((tuple(cols) for is_pk, cols in keys if is_pk), ())
    unique = tuple(tuple(cols) for _pk, cols in keys)
    foreign_keys = tuple(
        ExistingForeignKey(key, tuple(cols), ref_schema, ref_table, deferrable)
        for key, cols, ref_schema, ref_table, deferrable in pg.execute(_FOREIGN_KEYS, (oid,))
    )
    return ExistingTable(
        schema, name, columns, primary, unique, policies_apply, tuple(triggers), foreign_keys
    )


# Enabled triggers (user ones: foreign keys' are internal) and rules, on the table or any of
# its partitions (a partition's trigger fires for rows routed to it).
_REWRITES = """
WITH target AS (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = %s AND c.relname = %s),
tree AS (SELECT oid AS relid FROM target  -- no rows from pg_partition_tree unless partitioned
         UNION SELECT relid FROM pg_partition_tree((SELECT oid FROM target)))
SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid IN (SELECT relid FROM tree)
               AND NOT tgisinternal AND tgenabled <> 'D')
    OR EXISTS (SELECT 1 FROM pg_rewrite WHERE ev_class IN (SELECT relid FROM tree)
               AND rulename <> '_RETURN')
"""


def rewrites_rows(pg: psycopg.Connection, schema: str, name: str) -> bool:
    """Whether something in the target may change a row written into ``schema.name`` (a
    trigger or a rule), asked in the writer's transaction: what the plan read may be
    stale."""
    return bool(pg.execute(_REWRITES, (schema, name)).fetchone()[0])

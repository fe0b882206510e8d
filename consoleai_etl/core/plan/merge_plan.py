"""Merge mode's plan: which existing target table and column each source table and column
goes into, as what type, on which key; and the preflight that refuses a merge that could
not work, before anything is written.

Names map case-insensitively (an application whose tool lower-cased every name still
matches), an exact spelling winning over a case-folded one; ``merge_tables`` and
``merge_columns`` rename, ``ignore_columns`` leaves a source column out. Each mapped
column is staged as the TARGET's type, through a casting rule (``rules``): a value that
type refuses is quarantined with the type as the reason, as for any type the user chose.
``integer`` and ``smallint`` are staged as ``bigint`` and their out-of-range values
quarantined (``ranges``), since the load's converters know only ``bigint``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from consoleai_etl.core.errors import MigrationError, TargetError
from consoleai_etl.core.plan.declared import PgType, declared_pg_type
from consoleai_etl.core.plan.names import pg_identifier
from consoleai_etl.core.plan.profile import Profile
from consoleai_etl.core.plan.rules import CastingRule
from consoleai_etl.core.source.catalog import Catalog, Table
from consoleai_etl.core.target.existing import ExistingColumn, ExistingTable

# A row both the source and the application changed since the last merge (or one no merge
# recorded): keep the target's row, write the source's, or stop (core/target/merge.py).
OnConflict = Literal["target", "source", "fail"]
ON_CONFLICT: tuple[OnConflict, ...] = get_args(OnConflict)

# format_type's base names this tool can load (``json`` is staged as jsonb and cast).
SUPPORTED_TYPES = (
    "smallint", "integer", "bigint", "text", "character varying", "numeric",
    "double precision", "boolean", "date", "timestamp without time zone",
    "timestamp with time zone", "jsonb", "json", "bytea",
)  # fmt: skip
INT_RANGES = {"smallint": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1)}
# Storage classes no value of which a target kind takes: numbers are never parsed from text
# (as in the type plan), and only bytea holds a BLOB.
REFUSED_CLASSES = {
    "bigint": ("text", "blob"),
    "double": ("text", "blob"),
    "numeric": ("text", "blob"),
    "bytea": (),
}


@dataclass(frozen=True)
class MergeOptions:
    """The run options of merge mode (source spellings; target names as the target has
    them)."""

    tables: Mapping[str, str] = field(default_factory=dict)  # source table -> target table
    columns: Mapping[str, str] = field(default_factory=dict)  # "table.column" -> target column
    ignore: tuple[str, ...] = ()  # "table.column" left out of the merge
    keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # table -> unique key
    on_conflict: OnConflict = "target"

    def __post_init__(self) -> None:
        if self.on_conflict not in ON_CONFLICT:  # e.g. update or skip, the earlier choices
            raise MigrationError(
                f"unknown on_conflict {self.on_conflict!r}: use target (keep the application's "
                "changed rows, the default), source (write the source's) or fail"
            )


@dataclass(frozen=True)
class MergeColumn:
    source: str
    staged: str  # its column in the staging table
    target: str
    target_type: str  # as format_type prints it: the cast into the target
    staged_type: PgType


@dataclass(frozen=True)
class TableMerge:
    source: str
    staged: str  # the staging table
    target: ExistingTable
    columns: tuple[MergeColumn, ...]
    key: tuple[str, ...]  # target columns of the ON CONFLICT key

    def rules(self) -> tuple[CastingRule, ...]:
        """A casting rule per column: the target's type, quarantine what it refuses."""
        return tuple(
            CastingRule(
                column=f"{self.source}.{c.source}",
                target_type=c.staged_type.sql,
                on_error="quarantine",
            )
            for c in self.columns
        )

    def ranges(self) -> tuple[tuple[str, str, int, int], ...]:
        """(staged column, target type, low, high) of the integer columns narrower than
        the bigint they are staged as."""
        return tuple(
            (c.staged, c.target_type, *INT_RANGES[c.target_type])
            for c in self.columns
            if c.target_type in INT_RANGES
        )


@dataclass(frozen=True)
class MergePlan:
    schema: str
    tables: Mapping[str, TableMerge]  # by source table name
    on_conflict: OnConflict = "target"


def staged_type(target_type: str) -> PgType | None:
    """The type a column is staged as for a target column of ``target_type``, or None when
    this tool cannot load that type."""
    if target_type.split("(")[0].strip() not in SUPPORTED_TYPES:
        return None
    return declared_pg_type(target_type)


def by_name(names: Iterable[str], wanted: str) -> str | None:
    """The one of ``names`` spelled ``wanted``, else the one equal to it case-insensitively;
    None when there is none or several."""
    names = list(names)
    if wanted in names:
        return wanted
    folded = [n for n in names if n.casefold() == wanted.casefold()]
    return folded[0] if len(folded) == 1 else None


def plan_merge(
    catalog: Catalog,
    profiles: Mapping[str, Profile],
    existing: Mapping[str, ExistingTable],
    schema: str,
    options: MergeOptions,
) -> MergePlan:
    """The merge of ``catalog``'s tables into ``existing`` (the target schema's tables);
    raises ``TargetError`` listing, in one line, every problem found: nothing is written."""
    problems = _unknown_options(catalog, options)
    tables = {}
    for table in catalog.tables:
        wanted = options.tables.get(table.name, table.name)
        found = by_name(existing, wanted)
        if found is None:
            problems.append(
                f"table {table.name}: no table {wanted!r} in schema {schema} "
                "(name it in merge_tables)"
            )
            continue
        merge, found_problems = _table_merge(
            table, existing[found], profiles.get(table.name, {}), options
        )
        problems += found_problems
        tables[table.name] = merge
    if problems:
        raise TargetError(
            f"merge into schema {schema} refused, nothing written ({len(problems)} "
            f"problem{'s' if len(problems) > 1 else ''}): {'; '.join(problems)}"
        )
    return MergePlan(schema, tables, options.on_conflict)


def _unknown_options(catalog: Catalog, options: MergeOptions) -> list[str]:
    """Options naming a source table or column the source does not have (a typo would
    otherwise silently map nothing)."""
    columns = {t.name: {c.name for c in t.columns} for t in catalog.tables}
    problems = [
        f"merge_tables names table {name!r}, which the source does not have"
        for name in [*options.tables, *options.keys]
        if name not in columns
    ]
    for option, entries in (("merge_columns", options.columns), ("ignore_columns", options.ignore)):
        for entry in entries:
            table, _, column = entry.rpartition(".")
            if column not in columns.get(table, ()):
                problems.append(f"{option} names column {entry!r}, which the source does not have")
    return problems


def _table_merge(
    table: Table, target: ExistingTable, profile: Profile, options: MergeOptions
) -> tuple[TableMerge, list[str]]:
    """One table's column mapping and key, and what is wrong with them."""
    where = f"{table.name} -> {target.name}"
    columns, problems = [], []
    for column in table.columns:
        qualified = f"{table.name}.{column.name}"
        if qualified in options.ignore:
            continue
        wanted = options.columns.get(qualified, column.name)
        name = by_name((c.name for c in target.columns), wanted)
        if name is None:
            problems.append(
                f"column {qualified}: no column {wanted!r} in {target.name} "
                "(name it in merge_columns or list it in ignore_columns)"
            )
            continue
        mapped, problem = _column(qualified, target.column(name), profile.get(column.name, {}))
        if problem:
            problems.append(problem)
        elif mapped:
            columns.append(MergeColumn(column.name, pg_identifier(column.name), name, *mapped))
    filled = {c.target for c in columns}
    problems += [
        f"{where}: target column {c.name} is NOT NULL without a default and no source column "
        "fills it"
        for c in target.columns
        if c.not_null and not c.fills_itself and c.name not in filled
    ]
    problems += [
        f"{where}: target column {c} is mapped from two source columns"
        for c in sorted(filled)
        if sum(m.target == c for m in columns) > 1
    ]
    key, problem = _key(table, target, options, filled)
    if problem:
        problems.append(f"{where}: {problem}")
    return TableMerge(table.name, pg_identifier(table.name), target, tuple(columns), key), problems


def _column(
    qualified: str, target: ExistingColumn, stored: Mapping[str, int]
) -> tuple[tuple[str, PgType] | None, str | None]:
    """((target type, staged type), None) for a column that can merge, else (None, why)."""
    into = f"column {qualified} -> {target.name} ({target.type})"
    if target.generated:
        return None, f"{into}: a generated column takes no value (list it in ignore_columns)"
    pg_type = staged_type(target.type)
    if pg_type is None:
        return None, (
            f"{into}: this tool cannot load type {target.type} (supported: "
            f"{', '.join(SUPPORTED_TYPES)}); list it in ignore_columns"
        )
    refused = [
        f"{stored[cls]:,} {cls}"
        for cls in REFUSED_CLASSES.get(pg_type.kind, ("blob",))
        if stored.get(cls)
    ]
    if refused:
        return (
            None,
            f"{into}: the source stores values that type cannot hold ({', '.join(refused)})",
        )
    if target.not_null and stored.get("null"):
        return None, f"{into}: NOT NULL, but the source stores {stored['null']:,} NULLs"
    return (target.type, pg_type), None


def _key(
    table: Table, target: ExistingTable, options: MergeOptions, filled: set[str]
) -> tuple[tuple[str, ...], str | None]:
    """The ON CONFLICT key: the configured one (a unique key of the target), else the
    target's primary key; every column of it must be filled by the source, and be NOT NULL
    in the target: a row with a NULL there has no identity (``ON CONFLICT`` never matches
    it, so every merge would insert it again), and the merge's comparison joins on ``=``."""
    key = tuple(options.keys.get(table.name, ())) or target.primary_key
    if not key:
        return (), f"target has no primary key: name a unique key in merge_keys.{table.name}"
    if key not in target.unique_keys:
        return key, f"merge_keys.{table.name} ({', '.join(key)}) is not a unique key of the target"
    missing = [c for c in key if c not in filled]
    if missing:
        return key, f"key column(s) {', '.join(missing)} not filled by the source"
    nullable = [c for c in key if not target.column(c).not_null]
    if nullable:
        return key, (
            f"key column(s) {', '.join(nullable)} can be NULL in the target: make them NOT NULL "
            f"or name a NOT NULL unique key in merge_keys.{table.name}"
        )
    return key, None

"""Merge mode's plan: which existing target table and column each source table and column
goes into, as what type, on which key; and the preflight that refuses a merge that could
not work, before anything is written.

Names map case-insensitively (an application whose tool lower-cased every name still
matches), an exact spelling winning over a case-folded one; ``merge_tables`` and
``merge_columns`` rename, ``ignore_columns`` leaves a source column out. Each mapped
column is staged as the TARGET's type (as the type registry reads it: uuid, inet,
interval, real, char(n), arrays, the application's enums and domains...), through a
casting rule (``rules``): a value that type refuses is quarantined with the type as the
reason, as for any type the user chose.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from consoleai_etl.core.errors import MigrationError, OptionProblem, TargetError
from consoleai_etl.core.plan.merge_order import unorderable
from consoleai_etl.core.plan.names import pg_column, pg_identifier
from consoleai_etl.core.plan.profile import Profile
from consoleai_etl.core.plan.rules import CastingRule
from consoleai_etl.core.source.catalog import Catalog, Table
from consoleai_etl.core.target.existing import ExistingColumn, ExistingTable
from consoleai_etl.core.types import registry
from consoleai_etl.core.types.pgtype import PgType

# A row both the source and the application changed since the last merge (or one no merge
# recorded): keep the target's row, write the source's, or stop (core/target/merge.py).
OnConflict = Literal["target", "source", "fail"]
ON_CONFLICT: tuple[OnConflict, ...] = get_args(OnConflict)


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
    key: tuple[str, ...]  # target columns the rows are matched on (the merge key)
    # A seeded table (``core/target/seeded.py``): the target's one-column primary key, filled
    # from the source, when the rows are matched on another key (a natural key).
    surrogate: str | None = None

    @property
    def arbiter(self) -> tuple[str, ...]:
        """The ``ON CONFLICT`` key: a seeded table's staged ids are the target's once mapped
        (its natural key need not be a unique key of the target), else the merge key."""
        return (self.surrogate,) if self.surrogate else self.key

    def rules(self) -> tuple[CastingRule, ...]:
        """A casting rule per column: the target's type, quarantine what it refuses."""
        return tuple(
            CastingRule(
                column=f"{self.source}.{c.source}",
                target_type=c.staged_type,
                on_error="quarantine",
            )
            for c in self.columns
        )


@dataclass(frozen=True)
class MergePlan:
    schema: str
    tables: Mapping[str, TableMerge]  # by source table name
    on_conflict: OnConflict = "target"


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
    tables: Collection[str] | None = None,
) -> MergePlan:
    """The merge of ``catalog``'s tables named in ``tables`` (None: all of them) into
    ``existing`` (the target schema's tables); raises ``TargetError`` listing, in one line,
    every problem found: nothing is written. A table left out (a run's selection does not
    have it, or it is skipped) needs no target table. The options' names are known to be
    the source's (``unknown_options``)."""
    problems: list[str] = []
    merges = {}
    for table in catalog.tables:
        if tables is not None and table.name not in tables:
            continue
        wanted = options.tables.get(table.name, table.name)
        found = by_name(existing, wanted)
        if found is None:
            problems.append(
                f"table {table.name}: no table {wanted!r} in schema {schema} "
                "(name it in merge_tables, or list it in skip_tables)"
            )
            continue
        merge, found_problems = _table_merge(
            table, existing[found], profiles.get(table.name, {}), options
        )
        problems += found_problems
        merges[table.name] = merge
    problems += unorderable(merges)
    if problems:
        raise TargetError(
            f"merge into schema {schema} refused, nothing written ({len(problems)} "
            f"problem{'s' if len(problems) > 1 else ''}): {'; '.join(problems)}"
        )
    return MergePlan(schema, merges, options.on_conflict)


def unknown_options(catalog: Catalog, options: MergeOptions) -> list[OptionProblem]:
    """Options naming a source table or column the source does not have (a typo would
    otherwise silently map nothing), each keyed by its place in its option. Checked by the
    preflight (``check_names``) before the plan is made."""
    problems = [
        OptionProblem((option, name), problem)
        for option, names in (("merge_tables", options.tables), ("merge_keys", options.keys))
        for name in names
        if (problem := catalog.no_table(name))
    ]
    problems += [
        OptionProblem(("merge_columns", entry), problem)
        for entry in options.columns
        if (problem := catalog.no_column(entry))
    ]
    problems += [
        OptionProblem(("ignore_columns", number), problem)
        for number, entry in enumerate(options.ignore)
        if (problem := catalog.no_column(entry))
    ]
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
        if column.generated and target.column(name).generated:
            continue  # computed on both sides: the application's expression fills it
        mapped, problem = _column(qualified, target.column(name), profile.get(column.name, {}))
        if problem:
            problems.append(problem)
        elif mapped:
            columns.append(MergeColumn(column.name, pg_column(column.name), name, *mapped))
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
    if target.policies_apply:
        problems.append(
            f"{where}: row-level security policies apply to this role, so the merge would see "
            "and write only the rows they allow: merge as the table's owner (without FORCE "
            "ROW LEVEL SECURITY) or as a role with BYPASSRLS"
        )
    key, surrogate, problem = _key(table, target, options, filled)
    if problem:
        problems.append(f"{where}: {problem}")
    merge = TableMerge(
        table.name, pg_identifier(table.name), target, tuple(columns), key, surrogate
    )
    return merge, problems


def _column(
    qualified: str, target: ExistingColumn, stored: Mapping[str, int]
) -> tuple[tuple[str, PgType] | None, str | None]:
    """((target type, staged type), None) for a column that can merge, else (None, why)."""
    into = f"column {qualified} -> {target.name} ({target.type})"
    if target.generated:
        return None, f"{into}: a generated column takes no value (list it in ignore_columns)"
    pg_type = target.pg_type
    if pg_type is None:
        return None, (
            f"{into}: this tool cannot load type {target.type} (supported: "
            f"{', '.join(registry.names())}, one-dimensional arrays of most of them, enums "
            "and domains over them); list it in ignore_columns"
        )
    taken = registry.takes(pg_type)
    refused = [
        f"{count:,} {cls}" for cls, count in stored.items() if cls not in taken and cls != "null"
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
) -> tuple[tuple[str, ...], str | None, str | None]:
    """(key, surrogate, problem): the merge key is the configured one, else the target's
    primary key. A configured key other than a one-column primary key the source fills
    makes the table seeded: matched on that natural key, its ids translated
    (``core/target/seeded.py``), so the key need not be unique in the target (two target
    rows one key matches stop the merge, naming both); any other configured key must be a
    unique key of the target (the ``ON CONFLICT`` key). Every column of the key must be
    filled by the source, and be NOT NULL in the target: a row with a NULL there has no
    identity (``ON CONFLICT`` never matches it, so every merge would insert it again), and
    the merge's comparison joins on ``=``."""
    key = tuple(options.keys.get(table.name, ())) or target.primary_key
    if not key:
        return (), None, f"target has no primary key: name a unique key in merge_keys.{table.name}"
    primary = target.primary_key
    seeded = len(primary) == 1 and key != primary and primary[0] in filled
    surrogate = primary[0] if seeded else None
    missing = [c for c in key if c not in filled]
    nullable = [c for c in key if c in filled and not target.column(c).not_null]
    problem = None
    if not seeded and key not in target.unique_keys:
        problem = f"merge_keys.{table.name} ({', '.join(key)}) is not a unique key of the target"
    elif missing:
        problem = f"key column(s) {', '.join(missing)} not filled by the source"
    elif nullable:
        problem = (
            f"key column(s) {', '.join(nullable)} can be NULL in the target: make them NOT "
            f"NULL or name a NOT NULL unique key in merge_keys.{table.name}"
        )
    return key, surrogate, problem

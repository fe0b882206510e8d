"""Target plan: the PostgreSQL type of every column, and why, from declared type + stored values.

Rules (DESIGN.md): INTEGER-like -> bigint (a rowid alias becomes an identity column),
REAL -> double precision, NUMERIC/DECIMAL(p,s) -> numeric(p,s), BLOB -> bytea, BOOLEAN ->
boolean, TEXT -> text, VARCHAR(n)/CHAR(n) -> varchar(n) (never blank-padded char(n)),
DATE -> date, DATETIME/TIMESTAMP -> timestamp, JSON -> jsonb. A missing or unknown declared
type is decided from the storage classes the column actually holds.

This module is pure: it plans from what was measured. Reading the source to measure it,
and widening a declared type that some stored value does not fit, is ``planner``'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from consoleai_etl.core.encode import convert
from consoleai_etl.core.plan.date_encodings import NumberRange, auto_encoding, suggestion
from consoleai_etl.core.plan.declared import declared_pg_type
from consoleai_etl.core.plan.defaults import plan_default, shown
from consoleai_etl.core.plan.names import pg_column, pg_identifier, renamed_because
from consoleai_etl.core.plan.rules import (
    DEFAULT_RULE,
    CastingRule,
    ColumnRule,
    chosen_type,
    rule_for,
)
from consoleai_etl.core.source.catalog import Column, CustomCollation, Table
from consoleai_etl.core.types import registry
from consoleai_etl.core.types.builtin import TEMPORAL_KINDS
from consoleai_etl.core.types.pgtype import PgType


@dataclass(frozen=True)
class ColumnPlan:
    source: str
    name: str
    declared_type: str
    observed: dict[str, int]
    pg_type: PgType
    not_null: bool
    identity: bool
    default: object
    reason: str
    rule: ColumnRule = DEFAULT_RULE
    # How numbers in a date/time column are read: the rule's encoding, or for ``auto`` the
    # one that explains every stored number (``iso``: none does, numbers are refused).
    encoding: str = "auto"
    widened: str | None = None  # why the stored values overruled the declared type
    default_sql: str | None = None  # the SQLite default as written
    # What became of it, when it is not kept for the declared type (``defaults``).
    default_note: str | None = None
    # A SQLite generated column that PostgreSQL computes too: its translated expression,
    # set once its values are proven equal (``target.generated``); None: plain values.
    computed: str | None = None

    def converter(self) -> convert.Converter:
        return registry.converter(self.pg_type, self.rule, self.encoding)

    def with_default(self, *, numbers_only: bool = False) -> ColumnPlan:
        """The column with its SQLite default planned for its type (``plan_default``):
        called again whenever the type changes, so a default never outlives its type."""
        default, note = plan_default(
            self.default_sql, self.declared_type, self.pg_type, self.converter(),
            numbers_only=numbers_only,
        )  # fmt: skip
        return replace(self, default=default, default_note=note)

    @property
    def default_plan(self) -> str | None:
        """The default's entry in the report's type plan."""
        if self.default_sql is None:
            return None
        return self.default_note or f"default {self.default_sql} as {shown(self.default)}"

    @property
    def numbers_unmeasured(self) -> bool:
        """A date column stores numbers whose encoding needs all of them measured first."""
        return self.pg_type.kind in TEMPORAL_KINDS and self.encoding == "auto"

    @property
    def on_error(self) -> str:
        """What a value the planned type refuses does: the rule's ``on_error``, else
        ``widen`` (the planner chooses a type every stored value fits) for a type only
        suggested by the declaration or the values, and ``quarantine`` for a type the user
        chose (a ``target_type`` or a ``date_encoding`` rule)."""
        chosen = self.rule.target_type is not None or self.rule.date_encoding != "auto"
        return self.rule.on_error or ("quarantine" if chosen else "widen")

    @property
    def native_classes(self) -> frozenset[str]:
        """Storage classes that psycopg can send as they are, with no per-value check (none
        for a type retyped after the COPY: its converter checks what the type holds)."""
        return frozenset() if self.pg_type.retyped else NATIVE.get(self.pg_type.kind, frozenset())

    def needs_conversion(self) -> bool:
        return bool(set(self.observed) - {"null"} - self.native_classes)


NATIVE = {
    "bigint": frozenset({"integer"}),
    "double": frozenset({"real"}),
    "bytea": frozenset({"blob"}),
}


@dataclass(frozen=True)
class TablePlan:
    table: Table
    name: str
    columns: tuple[ColumnPlan, ...]
    source_rows: int
    notes: tuple[str, ...] = field(default=())  # every warning but the defaults' notes

    @property
    def warnings(self) -> tuple[str, ...]:
        """The plan's warnings: its notes, then what became of each noted default (derived
        from the columns, so a re-planned default leaves no stale warning)."""
        defaults = (f"column {c.source}: {c.default_note}" for c in self.columns if c.default_note)
        return (*self.notes, *defaults)

    def without_defaults(self) -> TablePlan:
        """The plan of a table only merged from: the application's table keeps its own
        defaults, so the source's are neither set nor reported."""
        columns = (
            replace(c, default=None, default_sql=None, default_note=None) for c in self.columns
        )
        return replace(self, columns=tuple(columns))

    def column(self, source_name: str) -> ColumnPlan:
        return next(c for c in self.columns if c.source == source_name)

    @property
    def hash_columns(self) -> list[tuple[str, str]]:
        """(kind, PostgreSQL name) of every column, as the checksum reads them."""
        return [(c.pg_type.kind, c.name) for c in self.columns]

    def pg_names(self, source_names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(self.column(n).name for n in source_names)


def observed_pg_type(observed: dict[str, int]) -> tuple[PgType, str]:
    """Type chosen from the values stored, with the reason, for untyped/unknown columns."""
    classes = set(observed) - {"null"}
    if not classes:
        return PgType("text", "text"), "no non-NULL values stored"
    if classes == {"integer"}:
        return PgType("bigint", "bigint"), "only integers stored"
    if classes <= {"integer", "real"}:
        return PgType("double", "double precision"), "only numbers stored"
    if classes == {"blob"}:
        return PgType("bytea", "bytea"), "only BLOBs stored"
    if "blob" in classes:
        return PgType("bytea", "bytea"), f"BLOBs among others ({', '.join(sorted(classes))})"
    return PgType("text", "text"), f"mixed storage classes ({', '.join(sorted(classes))})"


def _encoding(
    pg_type: PgType, rule: ColumnRule, observed: dict[str, int], numbers: NumberRange | None
) -> tuple[str, str | None]:
    """(date encoding, note for the reason) of a column: the rule's, or for ``auto`` the one
    every stored number is plausible under; ``iso`` when no number is stored or none fits.
    ``auto`` is kept when numbers are stored but not measured yet: the planner then
    measures them before loading."""
    if pg_type.kind not in TEMPORAL_KINDS or rule.date_encoding != "auto":
        return rule.date_encoding, None
    if not {"integer", "real"} & set(observed):
        return "iso", None
    if numbers is None:
        return "auto", None
    encoding = auto_encoding(numbers)
    if encoding is None:
        return "iso", None
    return encoding, f"numbers read as {encoding} (all {numbers.count} are plausible dates)"


_QUOTED = re.compile(r"('(?:[^']|'')*')")
_CHECK = re.compile(r"\bCHECK\s*\(", re.IGNORECASE)


def plan_column(
    table: Table,
    column: Column,
    observed: dict[str, int],
    rule: ColumnRule = DEFAULT_RULE,
    numbers: NumberRange | None = None,
) -> tuple[ColumnPlan, list]:
    declared = declared_pg_type(column.declared_type) if column.declared_type else None
    if rule.target_type is not None:
        pg_type = chosen_type(rule.target_type)
        reason = f"{rule.source}: {pg_type.sql}"
    elif declared is not None:
        pg_type, reason = declared, f"declared {column.declared_type}"
    else:
        pg_type, why = observed_pg_type(observed)
        label = (
            f"unknown declared type {column.declared_type}"
            if column.declared_type
            else ("no declared type")
        )
        reason = f"{label}; {why}"
    identity = table.rowid_alias == column.name
    if identity:
        reason += "; rowid alias -> identity"
    encoding, note = _encoding(pg_type, rule, observed, numbers)
    if note:
        reason += f"; {note}"
    warnings = []
    if numbers is not None and encoding == "iso":
        warnings.append(f"column {column.name}: {suggestion(numbers)}")
    if pg_type.kind == "bytea" and set(observed) - {"blob", "null"}:
        warnings.append(
            f"column {column.name}: its text and numbers are stored as the bytes of their "
            "text form, as SQLite's CAST(x AS BLOB) gives them"
        )
    plan = ColumnPlan(
        source=column.name,
        name=pg_column(column.name),
        declared_type=column.declared_type,
        observed=observed,
        pg_type=pg_type,
        not_null=column.not_null or column.pk_position > 0,
        identity=identity,
        default=None,
        reason=reason,
        rule=rule,
        encoding=encoding,
        default_sql=column.default_sql,
    ).with_default()
    if plan.name != column.name:
        why = renamed_because(column.name)
        warnings.append(f"column {column.name!r} renamed to {plan.name!r} ({why})")
    return plan, warnings


def _collation_warning(collation: CustomCollation) -> str:
    return (
        f"collation {collation.name} ({', '.join(collation.used_by)}) is defined by the "
        "application that wrote the file, not by SQLite: read with a case-insensitive "
        "stand-in (Unicode case folding); the PostgreSQL columns use the default collation, "
        f"so ordering and uniqueness by {collation.name} are not reproduced"
    )


def plan_table(
    table: Table,
    profile: dict[str, dict[str, int]],
    source_rows: int,
    rules: tuple[CastingRule, ...] = (),
    numbers: dict[str, NumberRange] | None = None,
) -> TablePlan:
    """The target plan for ``table`` given its measured storage-class profile, the
    measured numbers of its date columns (``planner``) and the casting rules."""
    columns, warnings = [], []
    for column in table.columns:
        rule = rule_for(rules, table.name, column.name, column.declared_type)
        plan, column_warnings = plan_column(
            table, column, profile.get(column.name, {}), rule, (numbers or {}).get(column.name)
        )
        columns.append(plan)
        warnings += column_warnings
    name = pg_identifier(table.name)
    if name != table.name:
        warnings.append(f"table {table.name!r} renamed to {name!r} ({renamed_because(table.name)})")
    if _CHECK.search(_QUOTED.sub("''", table.sql)):
        warnings.append("CHECK constraints not recreated (see the source DDL)")
    for index in table.indexes:
        if index.unsupported:
            warnings.append(f"index {index.name} not recreated: {index.unsupported}")
    warnings += map(_collation_warning, table.collations)
    return TablePlan(table, name, tuple(columns), source_rows, tuple(warnings))

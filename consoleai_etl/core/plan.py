"""Target plan: the PostgreSQL type of every column, and why, from declared type + stored values.

Rules (DESIGN.md): INTEGER-like -> bigint (a rowid alias becomes an identity column),
REAL -> double precision, NUMERIC/DECIMAL(p,s) -> numeric(p,s), BLOB -> bytea, BOOLEAN ->
boolean, TEXT -> text, VARCHAR(n)/CHAR(n) -> varchar(n) (never blank-padded char(n)),
DATE -> date, DATETIME/TIMESTAMP -> timestamp, JSON -> jsonb. A missing or unknown declared
type is decided from the storage classes the column actually holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from consoleai_etl.core import convert
from consoleai_etl.core.catalog import Column, Table
from consoleai_etl.core.names import pg_identifier, renamed_because
from consoleai_etl.core.rules import DEFAULT_RULE, CastingRule, ColumnRule, rule_for

STORAGE_CLASSES = ("integer", "real", "text", "blob", "null")


@dataclass(frozen=True)
class PgType:
    kind: str  # converter family: bigint, double, numeric, text, bytea, boolean, date, ...
    sql: str  # the type as written in DDL
    length: int | None = None
    precision: int | None = None
    scale: int | None = None


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

    def converter(self) -> convert.Converter:
        return converter_for(self.pg_type, self.rule.date_encoding)

    @property
    def native_classes(self) -> frozenset[str]:
        """Storage classes that psycopg can send as they are, with no per-value check."""
        return NATIVE.get(self.pg_type.kind, frozenset())

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
    warnings: tuple[str, ...] = field(default=())

    def column(self, source_name: str) -> ColumnPlan:
        return next(c for c in self.columns if c.source == source_name)

    @property
    def hash_columns(self) -> list[tuple[str, str]]:
        """(kind, PostgreSQL name) of every column, as the checksum reads them."""
        return [(c.pg_type.kind, c.name) for c in self.columns]

    def pg_names(self, source_names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(self.column(n).name for n in source_names)


_TYPE_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_ ]*?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")


def declared_pg_type(declared: str) -> PgType | None:
    """The PostgreSQL type for a declared SQLite type, or None when it says nothing usable."""
    match = _TYPE_RE.match(declared)
    if not match:
        return None
    base = " ".join(match.group(1).upper().split())
    first = int(match.group(2)) if match.group(2) else None
    second = int(match.group(3)) if match.group(3) else None
    if base in ("BOOLEAN", "BOOL"):
        return PgType("boolean", "boolean")
    if base == "DATE":
        return PgType("date", "date")
    if base in ("DATETIME", "TIMESTAMP", "TIMESTAMP WITHOUT TIME ZONE"):
        return PgType("timestamp", "timestamp")
    if base in ("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"):
        return PgType("timestamptz", "timestamptz")
    if base in ("JSON", "JSONB"):
        return PgType("jsonb", "jsonb")
    if "INT" in base:
        return PgType("bigint", "bigint")
    if base in ("NUMERIC", "DECIMAL"):
        if first is None:
            return PgType("numeric", "numeric")
        if not 1 <= first <= 1000 or (second or 0) > first:
            return None
        return PgType("numeric", f"numeric({first},{second or 0})", None, first, second or 0)
    if base in ("REAL", "DOUBLE", "DOUBLE PRECISION", "FLOAT"):
        return PgType("double", "double precision")
    if any(word in base for word in ("CHAR", "CLOB", "TEXT")):
        if first and "CHAR" in base:
            return PgType("text", f"varchar({first})", first)
        return PgType("text", "text")
    if base in ("BLOB", "BYTEA"):
        return PgType("bytea", "bytea")
    return None


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
    return PgType("text", "text"), f"mixed storage classes ({', '.join(sorted(classes))})"


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
# SQLite's "now" expressions (always UTC) and their PostgreSQL equivalents per target kind.
_UTC_NOW = "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')"
_NOW_DATETIME = {
    "timestamp": _UTC_NOW,
    "timestamptz": "CURRENT_TIMESTAMP",
    "date": f"{_UTC_NOW}::date",
    "text": f"to_char({_UTC_NOW}, 'YYYY-MM-DD HH24:MI:SS')",
}
_NOW_DATE = {"date": f"{_UTC_NOW}::date", "text": f"to_char({_UTC_NOW}, 'YYYY-MM-DD')"}
_NOW_EPOCH = {
    "bigint": "extract(epoch FROM CURRENT_TIMESTAMP)::bigint",
    "double": "extract(epoch FROM CURRENT_TIMESTAMP)::double precision",
}
_EXPRESSIONS = {
    "current_timestamp": _NOW_DATETIME,
    "datetime('now')": _NOW_DATETIME,
    "strftime('%Y-%m-%d %H:%M:%S','now')": _NOW_DATETIME,
    "current_date": _NOW_DATE,
    "date('now')": _NOW_DATE,
    "strftime('%s','now')": _NOW_EPOCH,
    "cast(strftime('%s','now')as integer)": _NOW_EPOCH,
    "julianday('now')": {"double": "(extract(epoch FROM CURRENT_TIMESTAMP) / 86400 + 2440587.5)"},
}
_CONVERTERS = {
    "bigint": convert.to_bigint,
    "double": convert.to_double,
    "bytea": convert.to_bytea,
    "boolean": convert.to_boolean,
    "jsonb": convert.to_json_text,
}


def converter_for(pg_type: PgType, date_encoding: str = "auto") -> convert.Converter:
    if pg_type.kind == "numeric":
        return convert.make_numeric(pg_type.precision, pg_type.scale)
    if pg_type.kind == "text":
        return convert.make_text(pg_type.length)
    if pg_type.kind in ("date", "timestamp", "timestamptz"):
        return convert.make_temporal(pg_type.kind, date_encoding)
    return _CONVERTERS[pg_type.kind]


_QUOTED = re.compile(r"('(?:[^']|'')*')")
_CHECK = re.compile(r"\bCHECK\s*\(", re.IGNORECASE)
_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")


def _normalize(expression: str) -> str:
    """Lower case and single spaces outside string literals; no space around , ( )."""
    parts = _QUOTED.split(expression)
    for i in range(0, len(parts), 2):  # even parts are outside quotes
        text = " ".join(parts[i].lower().split())
        parts[i] = re.sub(r"\s*([(),])\s*", r"\1", text)
    return "".join(parts)


def translate_default(default_sql: str | None, pg_type: PgType) -> tuple[object, str | None]:
    """(the default as a Python value or SQL text marker, warning). None means no default.

    Literal defaults go through the column's own converter, so a default that the column
    could not hold is reported instead of breaking the DDL.
    """
    if default_sql is None:
        return None, None
    text = default_sql.strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    upper = text.upper()
    if upper == "NULL":
        return None, None
    expression = _EXPRESSIONS.get(_normalize(text), {}).get(pg_type.kind)
    if expression:
        return SqlDefault(expression), None
    value: object
    if _NUMBER.match(text):
        value = int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
    elif _STRING_LITERAL.fullmatch(text):
        value = text[1:-1].replace("''", "'")
    elif upper in ("TRUE", "FALSE"):
        value = int(upper == "TRUE")
    else:
        return None, f"default {default_sql} not translated (SQLite expression)"
    try:
        return converter_for(pg_type)(value), None
    except ValueError as exc:
        return None, f"default {default_sql} not translated ({exc})"


@dataclass(frozen=True)
class SqlDefault:
    """A default that is an SQL expression rather than a literal value."""

    sql: str


def plan_column(
    table: Table, column: Column, observed: dict[str, int], rule: ColumnRule = DEFAULT_RULE
) -> tuple[ColumnPlan, list]:
    declared = declared_pg_type(column.declared_type) if column.declared_type else None
    if rule.target_type is not None:
        pg_type = declared_pg_type(rule.target_type)
        assert pg_type is not None  # validated when the rule was parsed
        reason = f"{rule.source}: {rule.target_type}"
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
    default, warning = translate_default(column.default_sql, pg_type)
    warnings = [f"column {column.name}: {warning}"] if warning else []
    plan = ColumnPlan(
        source=column.name,
        name=pg_identifier(column.name),
        declared_type=column.declared_type,
        observed=observed,
        pg_type=pg_type,
        not_null=column.not_null or column.pk_position > 0,
        identity=identity,
        default=default,
        reason=reason,
        rule=rule,
    )
    if plan.name != column.name:
        why = renamed_because(column.name)
        warnings.append(f"column {column.name!r} renamed to {plan.name!r} ({why})")
    return plan, warnings


def plan_table(
    table: Table,
    profile: dict[str, dict[str, int]],
    source_rows: int,
    rules: tuple[CastingRule, ...] = (),
) -> TablePlan:
    """The target plan for ``table`` given its measured storage-class profile and rules."""
    columns, warnings = [], []
    for column in table.columns:
        rule = rule_for(rules, table.name, column.name, column.declared_type)
        plan, column_warnings = plan_column(table, column, profile.get(column.name, {}), rule)
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
    return TablePlan(table, name, tuple(columns), source_rows, tuple(warnings))

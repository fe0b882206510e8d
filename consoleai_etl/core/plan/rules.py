"""Casting rules: per-column or per-declared-type overrides of the default plan.

A rule matches ``table.column`` (exact spelling) or a declared type (case-insensitive, e.g.
``DATETIME``); a column rule wins over a type rule, and each field left unset falls back to
the next rule, then to the safe default (the planner's type, auto date encoding, no text
repair, and ``widen`` for a value the planned type refuses, unless the rule chose the type:
then ``quarantine``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Literal, get_args

from consoleai_etl.core.errors import MigrationError, OptionProblem
from consoleai_etl.core.source.catalog import Catalog
from consoleai_etl.core.types import registry
from consoleai_etl.core.types.intervals import INTERVAL_UNITS, IntervalUnit
from consoleai_etl.core.types.pgtype import PgType

# The one list of each choice: the Dagster config schema (``defs/settings.py``) is built from
# these types, and the checks below read the tuples derived from them.
DateEncoding = Literal["auto", "iso", "unix_seconds", "unix_ms", "julian_day", "core_data_seconds"]
OnError = Literal["quarantine", "fail", "widen", "null"]
TextRepair = Literal["strip_nul", "latin1"]
OrphanPolicy = Literal["quarantine", "keep", "fail"]

DATE_ENCODINGS: tuple[DateEncoding, ...] = get_args(DateEncoding)
ON_ERROR: tuple[OnError, ...] = get_args(OnError)
TEXT_REPAIRS: tuple[TextRepair, ...] = get_args(TextRepair)
ORPHAN_POLICIES: tuple[OrphanPolicy, ...] = get_args(OrphanPolicy)


@dataclass(frozen=True)
class CastingRule:
    column: str | None = None  # "table.column"
    declared_type: str | None = None
    # A type name; merge mode's own rules give the target column's type itself (an enum or
    # a domain of the application has no name a rule could resolve).
    target_type: str | PgType | None = None
    date_encoding: DateEncoding | None = None
    on_error: OnError | None = None
    text_repair: tuple[TextRepair, ...] = field(default=())
    interval_unit: IntervalUnit | None = None  # what a number in an interval column counts

    def __post_init__(self) -> None:
        where = f"casting rule {self.column or self.declared_type or '(no match)'}"
        if problem := matcher_problem(self.column, self.declared_type):
            raise MigrationError(f"{where}: {problem}")
        _one_of(where, "date_encoding", self.date_encoding, DATE_ENCODINGS)
        _one_of(where, "on_error", self.on_error, ON_ERROR)
        _one_of(where, "interval_unit", self.interval_unit, INTERVAL_UNITS)
        for repair in self.text_repair:
            _one_of(where, "text_repair", repair, TEXT_REPAIRS)
        if isinstance(self.target_type, str) and (problem := target_type_problem(self.target_type)):
            raise MigrationError(f"{where}: {problem}")


def matcher_problem(column: str | None, declared_type: str | None) -> str | None:
    """What is wrong with a rule's matcher, or None. Shared with the Dagster config model, so
    run config and rule files are held to the same rule as this dataclass."""
    if (column is None) == (declared_type is None):
        return "give exactly one of `column` or `declared_type`"
    if column is not None and "." not in column:
        return "`column` must be written table.column"
    return None


def target_type_problem(target_type: str) -> str | None:
    """Why ``target_type`` is not a type a rule may choose, or None (shared like
    ``matcher_problem``): a parametrized type such as numeric(8,3) cannot be an enum. The
    name must be a PostgreSQL type's (``integr`` is not read as an integer, as a SQLite
    declaration would be)."""
    if registry.parse(target_type) is not None:
        return None
    return (
        f"unsupported target_type {target_type!r} (use one of {', '.join(registry.names())}, "
        "with (n) or (p,s) where the type takes them, or an array of one: text[])"
    )


def chosen_type(target_type: str | PgType) -> PgType:
    """The type a rule chose (validated when the rule was made)."""
    if isinstance(target_type, PgType):
        return target_type
    pg_type = registry.parse(target_type)
    assert pg_type is not None, target_type
    return pg_type


def unknown_columns(catalog: Catalog, rules: Sequence[CastingRule]) -> list[OptionProblem]:
    """Rules whose ``column`` names a table or column the source does not have: such a rule
    would match nothing and the column it meant would silently take the default plan. The
    key is the rule's place in the ``casting_rules`` option."""
    return [
        OptionProblem(("casting_rules", number, "column"), problem)
        for number, rule in enumerate(rules)
        if rule.column is not None and (problem := catalog.no_column(rule.column))
    ]


def _one_of(where: str, name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise MigrationError(f"{where}: {name} {value!r} is not one of {', '.join(allowed)}")


@dataclass(frozen=True)
class ColumnRule:
    """The effective rule for one column, every field resolved."""

    target_type: str | PgType | None = None
    date_encoding: str = "auto"
    on_error: str | None = None  # None: the planner's default (see ``ColumnPlan.on_error``)
    text_repair: tuple[str, ...] = ()
    interval_unit: str | None = None
    source: str = "default"  # which rule(s) decided, for the report


DEFAULT_RULE = ColumnRule()


def _base_type(declared: str) -> str:
    return " ".join(declared.split("(")[0].upper().split())


def rule_for(rules: tuple[CastingRule, ...], table: str, column: str, declared: str) -> ColumnRule:
    """Merge the column rule over the declared-type rule over the defaults."""
    by_column = [r for r in rules if r.column == f"{table}.{column}"]
    by_type = [
        r for r in rules if r.declared_type and _base_type(r.declared_type) == _base_type(declared)
    ]
    chain = by_column + by_type
    if not chain:
        return DEFAULT_RULE
    merged = {}
    for f in fields(ColumnRule):
        if f.name == "source":
            continue
        values = [getattr(r, f.name) for r in chain if getattr(r, f.name)]
        merged[f.name] = values[0] if values else getattr(DEFAULT_RULE, f.name)
    labels = [r.column or f"type {r.declared_type}" for r in chain]
    return ColumnRule(**merged, source="rule " + " + ".join(labels))


def parse_rules(raw: list[dict] | None) -> tuple[CastingRule, ...]:
    """Rules from YAML/run-config dicts, with a one-line error for an unknown key."""
    rules = []
    known = {f.name for f in fields(CastingRule)}
    for i, entry in enumerate(raw or []):
        unknown = set(entry) - known
        if unknown:
            raise MigrationError(
                f"casting rule #{i + 1}: unknown key(s) {', '.join(sorted(unknown))} "
                f"(allowed: {', '.join(sorted(known))})"
            )
        values = {k: v for k, v in entry.items() if v is not None}
        if "text_repair" in values:
            values["text_repair"] = tuple(values["text_repair"])
        rules.append(CastingRule(**values))
    return tuple(rules)

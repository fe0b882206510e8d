"""Casting rules: per-column or per-declared-type overrides of the default plan.

A rule matches ``table.column`` (exact spelling) or a declared type (case-insensitive, e.g.
``DATETIME``); a column rule wins over a type rule, and each field left unset falls back to
the next rule, then to the safe default (the planner's type, auto date encoding, no text
repair, and ``widen`` for a value the planned type refuses, unless the rule chose the type:
then ``quarantine``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from consoleai_etl.core.errors import MigrationError
from consoleai_etl.core.plan.declared import declared_pg_type

DATE_ENCODINGS = ("auto", "iso", "unix_seconds", "unix_ms", "julian_day", "core_data_seconds")
ON_ERROR = ("quarantine", "fail", "widen", "null")
TEXT_REPAIRS = ("strip_nul", "latin1")
ORPHAN_POLICIES = ("quarantine", "keep", "fail")


@dataclass(frozen=True)
class CastingRule:
    column: str | None = None  # "table.column"
    declared_type: str | None = None
    target_type: str | None = None
    date_encoding: str | None = None
    on_error: str | None = None
    text_repair: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        where = f"casting rule {self.column or self.declared_type or '(no match)'}"
        if (self.column is None) == (self.declared_type is None):
            raise MigrationError(f"{where}: give exactly one of `column` or `declared_type`")
        if self.column is not None and "." not in self.column:
            raise MigrationError(f"{where}: `column` must be written table.column")
        _one_of(where, "date_encoding", self.date_encoding, DATE_ENCODINGS)
        _one_of(where, "on_error", self.on_error, ON_ERROR)
        for repair in self.text_repair:
            _one_of(where, "text_repair", repair, TEXT_REPAIRS)
        if self.target_type is not None and declared_pg_type(self.target_type) is None:
            raise MigrationError(
                f"{where}: unsupported target_type {self.target_type!r} (use bigint, "
                "double precision, numeric(p,s), text, varchar(n), bytea, boolean, date, "
                "timestamp, timestamptz or jsonb)"
            )


def _one_of(where: str, name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise MigrationError(f"{where}: {name} {value!r} is not one of {', '.join(allowed)}")


@dataclass(frozen=True)
class ColumnRule:
    """The effective rule for one column, every field resolved."""

    target_type: str | None = None
    date_encoding: str = "auto"
    on_error: str | None = None  # None: the planner's default (see ``ColumnPlan.on_error``)
    text_repair: tuple[str, ...] = ()
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

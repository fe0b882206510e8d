"""A column's default, planned for the type the column gets.

A SQLite default means the value SQLite stores when it applies (``source.defaults``). The
PostgreSQL column gets that value when its type holds it unchanged, judged exactly as a
stored value of the column is (its converter); a "now" expression gets the PostgreSQL
expression that gives the value SQLite would store, when the column's type has one (a text
column gets SQLite's own text, ``YYYY-MM-DD HH:MM:SS``). Anything else is dropped with a
note, never the table. A default whose column does not get the type its declaration
suggests (the stored values widened it, a casting rule chose another) is noted either way:
the note is one of the table's warnings and the default's entry in the report's type plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from consoleai_etl.core.encode.convert import Converter, describe
from consoleai_etl.core.plan.declared import declared_pg_type
from consoleai_etl.core.source.defaults import Constant, stored_default
from consoleai_etl.core.types.pgtype import PgType


@dataclass(frozen=True)
class SqlDefault:
    """A default that is an SQL expression rather than a literal value."""

    sql: str


@dataclass(frozen=True)
class _Now:
    """A SQLite expression of the current time (always UTC): per target kind, the
    PostgreSQL expression giving the value SQLite stores; ``width``: its text's length."""

    by_kind: dict[str, str]
    width: int

    def sql_for(self, pg_type: PgType) -> str | None:
        if pg_type.retyped or (pg_type.length or self.width) < self.width:
            return None  # a family's own type (time, uuid...), or a varchar too short
        return self.by_kind.get(pg_type.kind)


_UTC_NOW = "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')"
_EPOCH = "floor(extract(epoch FROM CURRENT_TIMESTAMP))"  # strftime('%s') drops the fraction
_NOW_DATETIME = _Now(
    {
        "timestamp": _UTC_NOW,
        "timestamptz": "CURRENT_TIMESTAMP",
        "text": f"to_char({_UTC_NOW}, 'YYYY-MM-DD HH24:MI:SS')",
    },
    19,
)
_NOW_DATE = _Now(
    {
        "date": f"{_UTC_NOW}::date",
        "timestamp": f"{_UTC_NOW}::date::timestamp",
        "timestamptz": f"({_UTC_NOW}::date::timestamp AT TIME ZONE 'UTC')",
        "text": f"to_char({_UTC_NOW}, 'YYYY-MM-DD')",
    },
    10,
)
_NOW_TIME = _Now({"text": f"to_char({_UTC_NOW}, 'HH24:MI:SS')"}, 8)
_NOW_EPOCH = _Now(
    {
        "bigint": f"{_EPOCH}::bigint",
        "double": f"{_EPOCH}::double precision",
        "text": f"{_EPOCH}::bigint::text",
    },
    10,
)
_JULIAN_NOW = _Now({"double": "(extract(epoch FROM CURRENT_TIMESTAMP) / 86400 + 2440587.5)"}, 0)
_EXPRESSIONS = {
    "current_timestamp": _NOW_DATETIME,
    "datetime('now')": _NOW_DATETIME,
    "strftime('%Y-%m-%d %H:%M:%S','now')": _NOW_DATETIME,
    "current_date": _NOW_DATE,
    "date('now')": _NOW_DATE,
    "current_time": _NOW_TIME,
    "time('now')": _NOW_TIME,
    "strftime('%s','now')": _NOW_EPOCH,
    "cast(strftime('%s','now')as integer)": _NOW_EPOCH,
    "julianday('now')": _JULIAN_NOW,
}
_QUOTED = re.compile(r"('(?:[^']|'')*')")


def _normalize(expression: str) -> str:
    """Lower case and single spaces outside string literals; no space around , ( );
    no enclosing parentheses."""
    text = expression.strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    parts = _QUOTED.split(text)
    for i in range(0, len(parts), 2):  # even parts are outside quotes
        words = " ".join(parts[i].lower().split())
        parts[i] = re.sub(r"\s*([(),])\s*", r"\1", words)
    return "".join(parts)


def plan_default(
    default_sql: str | None,
    declared_type: str,
    pg_type: PgType,
    converter: Converter,
    *,
    numbers_only: bool = False,
) -> tuple[object, str | None]:
    """(the default for a column of ``pg_type``: a value, a ``SqlDefault`` or None; the
    note saying what became of it, None when it is kept for its declared type).

    ``converter`` is the column's own (casting rule and date encoding included);
    ``numbers_only``: the column was widened to a number type, which takes no text (as
    the widening ladder judges the stored values)."""
    if default_sql is None:
        return None, None
    default, why = _translated(default_sql, declared_type, pg_type, converter, numbers_only)
    if default is None and why is None:
        return None, None  # DEFAULT NULL
    if default is None:
        return None, f"default {default_sql} dropped: {why}"
    if declared_type and declared_pg_type(declared_type) != pg_type:
        return default, f"default {default_sql} translated to {shown(default)} for {pg_type.sql}"
    return default, None


def _translated(
    default_sql: str, declared_type: str, pg_type: PgType, converter: Converter, numbers_only: bool
) -> tuple[object, str | None]:
    """(the default, or None with why it is dropped; (None, None): DEFAULT NULL)."""
    stored = stored_default(declared_type, default_sql)
    if isinstance(stored, Constant):
        if stored.value is None:
            return None, None
        if numbers_only and isinstance(stored.value, str):
            return None, f"{describe(stored.value)} is text, not a number"
        try:
            return converter(stored.value), None
        except ValueError as exc:
            return None, str(exc)
    now = _EXPRESSIONS.get(_normalize(default_sql))
    expression = now and now.sql_for(pg_type)
    if expression:
        return SqlDefault(expression), None
    if stored.at_write_time and "'localtime'" in _normalize(default_sql):
        return None, (
            "it reads the clock in the local time zone of the machine that writes the row, "
            "which PostgreSQL does not know"
        )
    if stored.at_write_time:
        return None, (
            f"its value is computed when a row is written, and {pg_type.sql} has no "
            "PostgreSQL equivalent that stores the same value"
        )
    return (
        None,
        f"SQLite cannot evaluate it without the application that wrote the file ({stored.why})",
    )


def shown(default: object) -> str:
    """A planned default as SQL, for warnings and the report's type plan."""
    if isinstance(default, SqlDefault):
        return default.sql
    if isinstance(default, bool):
        return str(default).upper()
    if isinstance(default, int | float | Decimal):
        return str(default)
    if isinstance(default, bytes):
        return f"'\\x{default.hex()}'"
    return "'" + str(default).replace("'", "''") + "'"

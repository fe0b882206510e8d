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
from consoleai_etl.core.source.defaults import Computed, Constant, stored_default
from consoleai_etl.core.types.pgtype import PgType


@dataclass(frozen=True)
class SqlDefault:
    """A default that is an SQL expression rather than a literal value."""

    sql: str


@dataclass(frozen=True)
class _Now:
    """A SQLite expression of the current time (always UTC): per target kind, the
    PostgreSQL expression giving the value SQLite stores; ``sample``: a value of the same
    form as SQLite's, as SQL, which the column's affinity and type judge in its stead."""

    by_kind: dict[str, str]
    sample: str


_UTC_NOW = "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')"
_EPOCH = "floor(extract(epoch FROM CURRENT_TIMESTAMP))"  # strftime('%s') drops the fraction
_NOW_DATETIME = _Now(
    {
        "timestamp": _UTC_NOW,
        "timestamptz": "CURRENT_TIMESTAMP",
        "text": f"to_char({_UTC_NOW}, 'YYYY-MM-DD HH24:MI:SS')",
    },
    "'2000-01-02 03:04:05'",
)
_NOW_DATE = _Now(
    {
        "date": f"{_UTC_NOW}::date",
        "timestamp": f"{_UTC_NOW}::date::timestamp",
        "timestamptz": f"({_UTC_NOW}::date::timestamp AT TIME ZONE 'UTC')",
        "text": f"to_char({_UTC_NOW}, 'YYYY-MM-DD')",
    },
    "'2000-01-02'",
)
_NOW_TIME = _Now({"text": f"to_char({_UTC_NOW}, 'HH24:MI:SS')"}, "'03:04:05'")
_EPOCH_BY_KIND = {
    "bigint": f"{_EPOCH}::bigint",
    "double": f"{_EPOCH}::double precision",
    "text": f"{_EPOCH}::bigint::text",
}
_EXPRESSIONS = {
    "current_timestamp": _NOW_DATETIME,
    "datetime('now')": _NOW_DATETIME,
    "strftime('%Y-%m-%d %H:%M:%S','now')": _NOW_DATETIME,
    "current_date": _NOW_DATE,
    "date('now')": _NOW_DATE,
    "current_time": _NOW_TIME,
    "time('now')": _NOW_TIME,
    "strftime('%s','now')": _Now(_EPOCH_BY_KIND, "'1700000000'"),  # text of digits
    "cast(strftime('%s','now')as integer)": _Now(_EPOCH_BY_KIND, "1700000000"),
    "julianday('now')": _Now(
        {"double": "(extract(epoch FROM CURRENT_TIMESTAMP) / 86400 + 2440587.5)"}, "2451545.5"
    ),
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
    if isinstance(stored, Computed):
        return _clock(default_sql, declared_type, pg_type, converter, numbers_only, stored)
    if stored.value is None:
        return None, None
    return _held(stored.value, converter, numbers_only)


def _clock(
    default_sql: str,
    declared_type: str,
    pg_type: PgType,
    converter: Converter,
    numbers_only: bool,
    stored: Computed,
) -> tuple[SqlDefault | None, str | None]:
    """A default computed when a row is written: the PostgreSQL expression of a "now"
    expression, when the column holds what it stores (judged on a sample of the same form
    under the column's affinity) and its kind has one; else None and why."""
    normalized = _normalize(default_sql)
    now = _EXPRESSIONS.get(normalized)
    if now is not None:
        sample = stored_default(declared_type, now.sample)
        assert isinstance(sample, Constant)
        expression = None if pg_type.retyped else now.by_kind.get(pg_type.kind)
        if expression and _held(sample.value, converter, numbers_only)[1] is None:
            return SqlDefault(expression), None
        return None, (
            f"no PostgreSQL expression gives {pg_type.sql} the time it stores "
            f"(such as {describe(sample.value)})"
        )
    if stored.at_write_time and "'localtime'" in normalized:
        return None, (
            "it reads the clock in the local time zone of the machine that writes the row, "
            "which PostgreSQL does not know"
        )
    if stored.at_write_time:
        return (
            None,
            "its value is computed when a row is written, with no known PostgreSQL equivalent",
        )
    return (
        None,
        f"SQLite cannot evaluate it without the application that wrote the file ({stored.why})",
    )


def _held(value: object, converter: Converter, numbers_only: bool) -> tuple[object, str | None]:
    """(``value`` as the column holds it, None), or (None, why it cannot hold it unchanged),
    as the load judges a stored value."""
    if numbers_only and isinstance(value, str):
        return None, f"{describe(value)} is text, not a number"
    try:
        return converter(value), None
    except ValueError as exc:
        return None, str(exc)


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

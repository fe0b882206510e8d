"""The planner: reads what the source stores and decides every column's PostgreSQL type.

SQLite enforces neither declared lengths nor (outside STRICT tables) declared types, so a
declaration is a suggestion: the stored values decide. This module owns every decision
that needs to read the source, in the order the loader asks for them:

1. **guess** (``first_plan``): a plan from the storage classes of the first rows, for the
   compiled reader, which counts the real classes as it streams;
2. **measure** (``measured``): the plan those counts give; the streamed rows are kept only
   when it loads the table exactly as the guess did (else ``Refuted``);
3. **profile and widen** (``plan_source``): when the guess is refuted or a value refused,
   the whole table is profiled, the numbers of date columns are measured (their encoding
   needs every value, see ``date_encodings``), and each column that some stored value does
   not fit is widened to the narrowest type that holds every value unchanged (``WIDER``).
   Every widening is a warning. Only values no type can hold unchanged (a NUL in text,
   invalid UTF-8), or that break a type the user chose, are left to the quarantine.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace

from consoleai_etl.core.encode.codec import codec_for
from consoleai_etl.core.encode.convert import describe
from consoleai_etl.core.errors import ConversionError
from consoleai_etl.core.plan.date_encodings import NumberRange
from consoleai_etl.core.plan.declared import declared_pg_type
from consoleai_etl.core.plan.profile import Profile, profile_table, row_count, sample_profile
from consoleai_etl.core.plan.rules import CastingRule
from consoleai_etl.core.plan.table_plan import ColumnPlan, TablePlan, plan_table
from consoleai_etl.core.source.catalog import Table, sqlite_quote
from consoleai_etl.core.types import registry
from consoleai_etl.core.types.pgtype import PgType

GUESS_ROWS = 1_000  # rows sampled for a plan the compiled pass then checks
SCAN_BATCH = 5_000

_NUMBERS = ("bigint", "double precision", "numeric")
_DATES = ("timestamp", *_NUMBERS, "text")
# The types a declared kind widens to, narrowest first. Each holds every value the ones
# before it hold, unchanged: numbers as numbers (never text read as a number), dates as
# dates, anything but BLOBs as text. ``bytea`` comes last, and only for a column that
# stores BLOBs: text with a NUL or invalid UTF-8 is not widened into bytes.
WIDER: dict[str, tuple[str, ...]] = {
    "boolean": (*_NUMBERS, "text"),
    "bigint": ("double precision", "numeric", "text"),
    "double": ("numeric", "text"),
    "numeric": ("numeric", "text"),
    "date": _DATES,
    "timestamp": _DATES[1:],
    "timestamptz": _DATES[1:],
    "jsonb": ("text",),
    "text": ("text",),
    "bytea": (),
}


def first_plan(
    src: sqlite3.Connection, table: Table, rules: tuple[CastingRule, ...], guess: bool
) -> tuple[TablePlan, bool]:
    """The plan to start loading with, and whether it is a guess. With ``guess`` (the
    compiled reader will count every value's storage class) it is planned from the first
    rows, unless a date column of the sample stores numbers (their encoding depends on
    all of them); otherwise the table is profiled."""
    if guess:
        profile = sample_profile(src, table, GUESS_ROWS)
        plan = plan_table(table, profile, row_count(src, table.name), rules)
        if not any(c.numbers_unmeasured for c in plan.columns):
            return plan, True
    return plan_source(src, table, rules), False


class Refuted(Exception):
    """The table's storage classes, counted while streaming, call for another plan."""


def _load_form(column: ColumnPlan) -> tuple:
    """What decides how a column is created and how its values are sent."""
    rejects_null = column.not_null and column.observed.get("null", 0) > 0
    return (column.name, column.pg_type, column.not_null, column.identity, column.default,
            column.rule, column.encoding, column.needs_conversion(), rejects_null,
            codec_for(column, optimistic=True) is None)  # fmt: skip


def measured(guessed: TablePlan, census: Profile, rules: tuple[CastingRule, ...]) -> TablePlan:
    """The plan the counted storage classes give; raises ``Refuted`` unless it loads the
    table exactly as ``guessed`` did (then only its counts, reasons and warnings differ)."""
    rows = sum(census[guessed.table.columns[0].name].values()) if guessed.table.columns else 0
    plan = plan_table(guessed.table, census, rows, rules)
    if list(map(_load_form, plan.columns)) != list(map(_load_form, guessed.columns)):
        raise Refuted
    return plan


def plan_source(src: sqlite3.Connection, table: Table, rules: tuple[CastingRule, ...]) -> TablePlan:
    """Profile, plan and widen ``table``: the one plan both loading and re-verifying use,
    so a verify-only run converts the source exactly as the load did."""
    source_rows, profile = profile_table(src, table)
    plan = plan_table(table, profile, source_rows, rules)
    unread = [c.source for c in plan.columns if c.numbers_unmeasured]
    if unread:
        numbers = number_ranges(src, table, unread)
        plan = plan_table(table, profile, source_rows, rules, numbers)
    return widen(src, plan)


def number_ranges(
    src: sqlite3.Connection, table: Table, columns: list[str]
) -> dict[str, NumberRange]:
    """How many numbers each column stores, their extremes and whether all are integers."""
    parts = []
    for name in columns:
        c = sqlite_quote(name)
        number = f"CASE WHEN typeof({c}) IN ('integer', 'real') THEN {c} END"
        parts.append(f"count({number}), min({number}), max({number}), sum(typeof({c}) = 'real')")
    row = src.execute(f"SELECT {', '.join(parts)} FROM {sqlite_quote(table.name)}").fetchone()
    return {
        name: NumberRange(row[4 * i], row[4 * i + 1], row[4 * i + 2], not row[4 * i + 3])
        for i, name in enumerate(columns)
        if row[4 * i]
    }


def widen(src: sqlite3.Connection, plan: TablePlan) -> TablePlan:
    """``plan`` with every column that some stored value does not fit widened (its
    ``on_error`` is ``widen``, the default for a type the user did not choose). Decided by
    a scan before the table is created: a column's type cannot change in a COPY."""
    columns, notes = [], list(plan.notes)
    for column in plan.columns:
        if column.on_error == "widen" and _may_refuse(column):
            column = _widened(src, plan.table, column)
            if column.widened:
                notes.append(f"column {column.source}: {column.widened}")
        columns.append(column)
    return replace(plan, columns=tuple(columns), notes=tuple(notes))


def _may_refuse(column: ColumnPlan) -> bool:
    """Whether some stored value might not fit: a value that needs converting, except in
    unbounded text without BLOBs, which refuses only what no type holds as text (a NUL,
    invalid UTF-8)."""
    text = column.pg_type.kind == "text" and column.pg_type.length is None
    if text and "blob" not in column.observed:
        return False
    codec = codec_for(column)
    return codec is not None and codec.convert is not None


def _values(src: sqlite3.Connection, table: Table, column: ColumnPlan) -> Iterator[object]:
    name = sqlite_quote(column.source)
    cursor = src.execute(f"SELECT {name} FROM {sqlite_quote(table.name)} WHERE {name} IS NOT NULL")
    while batch := cursor.fetchmany(SCAN_BATCH):
        for (value,) in batch:
            yield value


def _ladder(column: ColumnPlan) -> list[PgType]:
    """The column's planned type, then the wider ones it may take (``WIDER``)."""
    wider = list(WIDER[column.pg_type.kind])
    if "blob" in column.observed and column.pg_type.kind != "bytea":
        wider.append("bytea")
    ladder = [column.pg_type]
    for sql_type in wider:
        pg_type = declared_pg_type(sql_type)
        assert pg_type is not None
        if pg_type != ladder[-1]:
            ladder.append(pg_type)
    return ladder


class _Rung:
    """One type of a column's ladder, and whether a value becomes it unchanged. A wider
    numeric type takes numbers only: text in a number column is not read as a number."""

    def __init__(self, column: ColumnPlan, pg_type: PgType) -> None:
        self.pg_type = pg_type
        self.numbers_only = pg_type != column.pg_type and pg_type.sql in _NUMBERS
        # A codec, so the column's text repair rules apply as they will in the load.
        self.codec = codec_for(replace(column, pg_type=pg_type, observed={"text": 1}))

    def fits(self, value: object) -> bool:
        if self.numbers_only and isinstance(value, str):
            return False
        try:
            assert self.codec is not None
            self.codec(value)
        except ConversionError:
            return False
        return True


def _widened(src: sqlite3.Connection, table: Table, column: ColumnPlan) -> ColumnPlan:
    """The column at the narrowest rung of its ladder that every stored value fits (values
    no rung takes are left to the quarantine), its default planned anew for that type.
    One scan per rung climbed: a value refused by the current rung moves it up to the
    first rung that takes it, and the scan starts over, since the values already seen must
    fit the new rung too."""
    ladder = [_Rung(column, pg_type) for pg_type in _ladder(column)]
    rung, first, restart = 0, None, True
    while restart:
        restart = False
        for value in _values(src, table, column):
            if ladder[rung].fits(value):
                continue
            higher = next((i for i in range(rung + 1, len(ladder)) if ladder[i].fits(value)), None)
            if higher is not None:
                first = first or _refusal(column, ladder[rung].pg_type, value)
                rung, restart = higher, True
                break
    if rung == 0:
        return column
    pg_type = ladder[rung].pg_type
    declared = f"declared {column.declared_type}" if column.declared_type else "no declared type"
    why = (
        f"{declared} ({column.pg_type.sql}), but stores values it cannot hold unchanged "
        f"(e.g. {first}): widened to {pg_type.sql}"
    )
    reason = f"{column.reason}; widened to {pg_type.sql} (e.g. {first})"
    widened = replace(column, pg_type=pg_type, widened=why, reason=reason)
    return widened.with_default(numbers_only=ladder[rung].numbers_only)


def _refusal(column: ColumnPlan, pg_type: PgType, value: object) -> str:
    try:
        registry.converter(pg_type, column.rule, column.encoding)(value)
    except ConversionError as exc:
        return str(exc)
    return f"{describe(value)} is text, not a number"

"""Column codecs: a column's rule applied to each source value on its way into COPY.

A codec repairs text when the rule asks (strip NUL, read invalid UTF-8 as Latin-1),
converts the value (a clean batch column at once, when its ``bulk`` form vouches for
every value), and on a refusal either nulls it (``on_error: null``) or raises
``ConversionError`` for the loader to quarantine the row or fail the table. It counts what
it changed so the report can say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consoleai_etl.core.encode.bulk import REFUSALS, Bulk, bulk_for
from consoleai_etl.core.encode.convert import Converter
from consoleai_etl.core.errors import ConversionError
from consoleai_etl.core.plan.table_plan import ColumnPlan
from consoleai_etl.core.source.connection import InvalidText


@dataclass
class ColumnCodec:
    plan: ColumnPlan
    convert: Converter | None
    repaired: int = 0
    nulled: int = 0
    bulk: Bulk | None = None

    def column(self, values: Sequence[object]) -> list[object]:
        """A batch column converted: in C-level bulk when the bulk form vouches for every
        value, else value by value (raising ``ConversionError`` at the first refusal)."""
        converted = self._bulk_column(values) if self.bulk else None
        return converted if converted is not None else list(map(self, values))

    def _bulk_column(self, values: Sequence[object]) -> list[object] | None:
        assert self.bulk is not None
        try:
            if None not in values:
                return self.bulk(values)
            if self.plan.not_null:
                return None  # the per-value path refuses the NULL and says why
            present = self.bulk([v for v in values if v is not None])
        except REFUSALS:
            return None
        if present is None:
            return None
        converted = iter(present)
        return [None if v is None else next(converted) for v in values]

    def __call__(self, value: object) -> object:
        if value is None:
            if self.plan.not_null:
                raise ConversionError("NULL in a NOT NULL column")
            return None
        repairs = self.plan.rule.text_repair
        if repairs:
            if "latin1" in repairs and isinstance(value, InvalidText):
                value = bytes(value).decode("latin-1")
                self.repaired += 1
            if "strip_nul" in repairs and type(value) is str and "\x00" in value:
                value = value.replace("\x00", "")
                self.repaired += 1
        if self.convert is None:
            return value
        try:
            return self.convert(value)
        except ConversionError:
            if self.plan.on_error == "null" and not self.plan.not_null:
                self.nulled += 1
                return None
            raise

    def warnings(self) -> list[str]:
        name = self.plan.source
        notes = []
        if self.repaired:
            notes.append(
                f"column {name}: {self.repaired} values repaired "
                f"({', '.join(self.plan.rule.text_repair)})"
            )
        if self.nulled:
            notes.append(
                f"column {name}: {self.nulled} unconvertible values set to NULL (on_error: null)"
            )
        return notes


def _server_checked(column: ColumnPlan) -> bool:
    """A text column holding only TEXT values and no repair rule: PostgreSQL itself refuses
    the only two things its converter would (a NUL, more characters than varchar(n) takes),
    so an optimistic load may send its values untouched and retry carefully on a refusal."""
    return (
        column.pg_type.kind == "text"
        and not column.pg_type.retyped
        and not column.rule.text_repair
        and set(column.observed) <= {"text", "null"}
    )


def codec_for(column: ColumnPlan, *, optimistic: bool = False) -> ColumnCodec | None:
    """The column's codec, or None when its values can be sent untouched (the fast path).

    ``optimistic`` also sends server-checked text untouched (see ``_server_checked``); the
    loader then treats a PostgreSQL data error as "retry this table carefully".
    """
    rejects_null = column.not_null and column.observed.get("null", 0) > 0
    if rejects_null:
        return ColumnCodec(column, column.converter() if column.needs_conversion() else None)
    if not column.needs_conversion() or (optimistic and _server_checked(column)):
        return None
    bulk = None if column.rule.text_repair else bulk_for(column.pg_type)
    return ColumnCodec(column, column.converter(), bulk=bulk)

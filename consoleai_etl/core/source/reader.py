"""The one source reader: how a table's rows leave SQLite, converted by the plan's codecs.

The load's Python stream, the checksum recomputed from the source and the divergence
locator all read rows through ``RowReader``: the same SELECT (a keyless table also reads its
real rowid, as the key its quarantined rows are filed under), the same batches and the same
conversion, so the rows a checksum recomputes are exactly the rows the load sent, and a row
the load quarantined is one the checksum leaves out. (The compiled reader, ``rowcopy``, is
the load's fast first pass over the same columns: it never quarantines, a refusal makes the
load fall back to this reader.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from consoleai_etl.core.encode.codec import ColumnCodec
from consoleai_etl.core.errors import ConversionError, MigrationError
from consoleai_etl.core.plan.table_plan import TablePlan
from consoleai_etl.core.source.catalog import Table, sqlite_quote

BATCH_ROWS = 5_000


def select_columns(table: Table) -> str:
    """The SELECT of a table's columns, in catalog order."""
    columns = ", ".join(sqlite_quote(c.name) for c in table.columns)
    return f"SELECT {columns} FROM {sqlite_quote(table.name)}"


class Refusal(NamedTuple):
    """A row a codec refused: the key it is filed under, the column, why, the raw row (the
    form ``bookkeeping.quarantine_rows`` writes)."""

    key: dict[str, object]
    column: str
    reason: str
    row: dict[str, object]


@dataclass
class Batch:
    """A batch of source rows: the converted values of the rows kept, the raw rows they came
    from (same order), and the rows refused."""

    values: list[Sequence[object]]
    raws: list[tuple]
    refused: list[Refusal]


class RowReader:
    """Reads ``plan``'s table in batches and converts them with ``codecs`` ((position,
    codec) of the columns to convert)."""

    def __init__(
        self,
        src: sqlite3.Connection,
        plan: TablePlan,
        codecs: list[tuple[int, ColumnCodec]],
    ) -> None:
        self.src, self.plan, self.codecs = src, plan, codecs
        table = plan.table
        self.names = [c.source for c in plan.columns]
        # Tables without a primary key also read the rowid, under a name no column hides
        # (``Table.rowid_name``); without one, a row to quarantine has no key (``key``).
        self.key_offset = int(not table.primary_key and table.rowid_name is not None)
        query = select_columns(table)
        if self.key_offset:
            query = query.replace("SELECT ", f"SELECT {table.rowid_name}, ", 1)
        self.query = query
        self.key_positions = [self.names.index(k) for k in table.primary_key]

    def batches(self, where: str = "", params: tuple = ()) -> Iterator[Batch]:
        """Every row (or those matching the SQL condition ``where``), a batch at a time."""
        cursor = self.src.execute(f"{self.query} WHERE {where}" if where else self.query, params)
        while raws := cursor.fetchmany(BATCH_ROWS):
            try:
                yield Batch(self._convert_columns(raws), raws, [])
            except ConversionError:
                yield self._convert_rows(raws)

    def primary_key(self, raw: tuple) -> tuple[object, ...]:
        """The primary key values of a raw row (``()`` for a keyless table)."""
        return tuple(raw[self.key_offset + k] for k in self.key_positions)

    def key(self, raw: tuple) -> dict[str, object]:
        """The key a quarantined row is filed under: its primary key, or its rowid."""
        if self.key_offset:
            return {"rowid": raw[0]}
        table = self.plan.table
        if not table.primary_key:
            raise MigrationError(
                f"table {table.name}: a row must be quarantined but has no key, as columns "
                "named rowid, _rowid_ and oid hide SQLite's rowid and there is no primary key: "
                "rename one of those columns or add a primary key in the source"
            )
        return dict(zip(table.primary_key, self.primary_key(raw), strict=True))

    def _convert_columns(self, raws: list[tuple]) -> list[Sequence[object]]:
        """The fast path: convert a clean batch column by column (C-level transposes, and
        bulk conversion where the values allow it, see ``bulk``). Raises ConversionError on
        the first refusal; the codecs' counters are then restored so the row-by-row retry
        does not count twice."""
        offset = self.key_offset
        if not self.codecs:
            return [raw[offset:] for raw in raws] if offset else raws
        counters = [(codec, codec.repaired, codec.nulled) for _, codec in self.codecs]
        columns = list(zip(*raws, strict=True))[offset:]
        try:
            for i, codec in self.codecs:
                columns[i] = codec.column(columns[i])
        except ConversionError:
            for codec, repaired, nulled in counters:
                codec.repaired, codec.nulled = repaired, nulled
            raise
        return list(zip(*columns, strict=True))

    def _convert_rows(self, raws: list[tuple]) -> Batch:
        """The careful path for a batch holding a refused value: row by row, so exactly the
        refused rows are set aside (or the table fails under ``on_error: fail``)."""
        batch = Batch([], [], [])
        for raw in raws:
            values = list(raw[self.key_offset :])
            try:
                for i, codec in self.codecs:
                    values[i] = codec(values[i])
            except ConversionError as exc:
                batch.refused.append(self._refusal(raw, i, exc))
                continue
            batch.values.append(values)
            batch.raws.append(raw)
        return batch

    def _refusal(self, raw: tuple, i: int, exc: ConversionError) -> Refusal:
        key, name = self.key(raw), self.names[i]
        if self.plan.columns[i].on_error == "fail":
            raise MigrationError(
                f"{self.plan.table.name}.{name} at {key}: {exc} (on_error: fail)"
            ) from None
        row = dict(zip(self.names, raw[self.key_offset :], strict=True))
        return Refusal(key, name, str(exc), row)

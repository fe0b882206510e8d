"""The compiled load stream: SQLite rows into hashed binary COPY tuples (``_rowcopy.c``).

Where the extension is not built (or ``CONSOLEAI_PYTHON_STREAM`` is set, see ``compiled``),
``compiled_source`` gives None and the loader takes the Python stream.

The loader's first pass. Columns that need no conversion go from SQLite into COPY without
becoming Python objects, and so do ISO dates and timestamps, 0/1 booleans and repeated
short JSON documents (the reader calls the column's codec for the other values, one by
one); the others reach their codecs as whole batch columns, as in the Python stream. The
tuples and their hashes are the same bytes and numbers the Python stream
(``tuples.TupleEncoder``) makes (the tests compare both). A huge value (over 1 MiB) ends
its batch and follows it in pieces (``Reader.piece``), so that no copy of it is made beyond
SQLite's own: the loader writes each piece to COPY as it comes.

A refused value, or a value of a storage class the plan did not expect (the source changed
since it was profiled), raises out of the batch; the loader then streams the table again
the Python way, which quarantines exactly the refused rows.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path

from consoleai_etl.core.encode.codec import ColumnCodec
from consoleai_etl.core.encode.compiled import module as _rowcopy
from consoleai_etl.core.encode.tuples import TupleEncoder
from consoleai_etl.core.plan.profile import census_profile
from consoleai_etl.core.plan.table_plan import ColumnPlan, TablePlan
from consoleai_etl.core.source.connection import LOCK_WAIT
from consoleai_etl.core.source.reader import select_columns

# Raised by the compiled reader only (a stand-in that nothing raises without it).
UnexpectedValue: type[Exception] = (
    _rowcopy.UnexpectedValue if _rowcopy else type("UnexpectedValue", (ValueError,), {})
)
PLAIN, CONVERTED, HYBRID = 0, 1, 2  # how the reader treats a column (see _rowcopy.c)
# Kinds whose commonest values (ISO text, 0/1) the reader converts itself, calling the
# codec for the others, value by value.
HYBRID_KINDS = frozenset({"date", "timestamp", "timestamptz", "boolean"})


def _mode(column: ColumnPlan) -> int:
    """How the reader treats a column that needs converting. JSON documents go value by
    value through the codec, the reader remembering each short one's converted form by its
    bytes, unless a text repair rule applies (the codec counts every repair)."""
    kind = column.pg_type.kind
    if kind in HYBRID_KINDS or (kind == "jsonb" and not column.rule.text_repair):
        return HYBRID
    return CONVERTED


# The compiled reader's handle on each source connection's file (``compiled_source``).
_sources: weakref.WeakKeyDictionary[sqlite3.Connection, object] = weakref.WeakKeyDictionary()


def compiled_source(src: sqlite3.Connection) -> object | None:
    """The compiled reader's own read-only handle on ``src``'s database file
    (``_rowcopy.Source``), kept as long as ``src`` is: the readers of every table read
    through it, so the file's schema is parsed once per connection, not once per table (a
    staging thread keeps its connection for the run, ``core.run.sessions``). None for an
    in-memory database or without the extension (the caller then streams in Python)."""
    if _rowcopy is None:
        return None
    try:
        return _sources[src]
    except KeyError:
        pass
    except TypeError:  # a plain sqlite3 connection (not ``open_source``'s): not kept
        return _open(src)
    source = _sources[src] = _open(src)
    return source


def _open(src: sqlite3.Connection) -> object | None:
    file = next(row[2] for row in src.execute("PRAGMA database_list") if row[1] == "main")
    if not file:
        return None
    return _rowcopy.Source(f"{Path(file).as_uri()}?mode=ro", int(LOCK_WAIT * 1000))


def tuples(
    source: object,
    plan: TablePlan,
    active: Sequence[tuple[int, ColumnCodec]],
    encoder: TupleEncoder,
    batch_rows: int,
    census: dict[str, dict[str, int]] | None = None,
) -> Iterator[bytes]:
    """COPY data for ``plan``'s table, one batch at a time, through the compiled reader of
    ``source`` (``compiled_source``).

    ``active`` are the (position, codec) of the columns that need converting; ``encoder``
    counts the rows and their hashes (and dumps values of types the extension leaves to
    psycopg). Once every row is read, ``census`` (if given) is filled with the storage
    classes counted on the way: the table's profile, without a scan of its own."""
    names = tuple(c.source for c in plan.columns)
    query = select_columns(plan.table)  # the source reader's own SELECT
    codecs = dict(active)
    modes = tuple(PLAIN if i not in codecs else _mode(c) for i, c in enumerate(plan.columns))
    converted = [(i, codec) for i, codec in active if modes[i] == CONVERTED]
    reader = _rowcopy.Reader(
        source,
        query,
        names,
        tuple(c.pg_type.kind for c in plan.columns),
        encoder.oids,
        modes,
        tuple(c.not_null for c in plan.columns),
        tuple(codecs.get(i) if mode == HYBRID else None for i, mode in enumerate(modes)),
        tuple(encoder.field_dumper(i) for i in range(len(names))),
        int(LOCK_WAIT * 1000),
    )
    with closing(reader):
        while (columns := reader.read(batch_rows)) is not None:
            for j, (_, codec) in enumerate(converted):
                columns[j] = codec.column(columns[j])
            data, hash_sum, seconds = reader.encode(columns)
            encoder.count(reader.rows, hash_sum, seconds)
            yield data
            while (piece := reader.piece()) is not None:  # a huge value's rest, in pieces
                yield piece
        if census is not None:
            census.update(census_profile(plan.table, reader.census()))

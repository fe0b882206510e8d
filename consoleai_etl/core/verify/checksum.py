"""Content checksums of a table on both sides, and the divergence locator.

The source side converts SQLite rows exactly as the load does (same plan, same codecs) and
hashes them in Python; the target side hashes the stored rows in SQL, inside PostgreSQL.
When the two differ, ``locate`` bisects the primary-key range, comparing range checksums on
both sides (as reladiff/data-diff do), down to small ranges whose rows are compared key by
key, and reports each divergent key with the columns that differ and both values.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from consoleai_etl.core.encode import canonical
from consoleai_etl.core.encode.codec import codec_for
from consoleai_etl.core.encode.tuples import MOD, TupleEncoder, row_hash_sql
from consoleai_etl.core.plan.table_plan import TablePlan
from consoleai_etl.core.run.report import CheckReport, divergences
from consoleai_etl.core.source.catalog import sqlite_quote
from consoleai_etl.core.source.reader import BATCH_ROWS, RowReader
from consoleai_etl.core.target import bookkeeping
from consoleai_etl.core.target.ddl import Place, qualified

LEAF_KEYS = 64  # ranges this narrow are compared key by key

Key = tuple[object, ...]


@dataclass(frozen=True)
class Checksum:
    rows: int
    value: int

    @classmethod
    def of(cls, rows: int, total: int) -> Checksum:
        return cls(int(rows), int(total) % MOD)

    def __str__(self) -> str:
        return f"{self.rows} rows, {self.value:016x}"


def key_columns(plan: TablePlan) -> tuple[str, ...]:
    """Source columns that identify a row (the primary key), or () for keyless tables."""
    return plan.table.primary_key


def integer_key(plan: TablePlan) -> str | None:
    """The single integer key column that range bisection can split, if any."""
    keys = key_columns(plan)
    if len(keys) == 1 and plan.column(keys[0]).pg_type.kind == "bigint":
        return keys[0]
    return None


def source_rows(
    src: sqlite3.Connection,
    plan: TablePlan,
    exclude: set[Key],
    key_range: tuple[int, int] | None = None,
) -> Iterator[tuple[Key, Sequence[object]]]:
    """(key, converted values) of the source rows the load kept: read and converted by
    the load's own reader, leaving out the rows it refused and those in ``exclude``."""
    codecs = [(i, codec) for i, c in enumerate(plan.columns) if (codec := codec_for(c))]
    reader = RowReader(src, plan, codecs)
    where, params = "", ()
    if key_range is not None:
        column = sqlite_quote(integer_key(plan) or "")
        where, params = f"{column} >= ? AND {column} < ?", key_range
    for batch in reader.batches(where, params):
        for raw, values in zip(batch.raws, batch.values, strict=True):
            key = reader.primary_key(raw)
            if key not in exclude:
                yield key, values


def source_checksum(
    src: sqlite3.Connection,
    pg: psycopg.Connection,
    plan: TablePlan,
    exclude: set[Key],
    key_range: tuple[int, int] | None = None,
) -> Checksum:
    """The checksum the load would have streamed, recomputed from the source."""
    encoder = TupleEncoder(pg, [c.pg_type.kind for c in plan.columns])
    batch: list[list[object]] = []
    for _key, values in source_rows(src, plan, exclude, key_range):
        batch.append(values)
        if len(batch) == BATCH_ROWS:
            encoder.encode(batch)
            batch = []
    encoder.encode(batch)
    return Checksum.of(encoder.rows, encoder.total)


def _range_condition(plan: TablePlan, key_range: tuple[int, int] | None) -> sql.Composable:
    if key_range is None:
        return sql.SQL("TRUE")
    column = sql.Identifier(plan.column(integer_key(plan) or "").name)
    return sql.SQL("{c} >= {lo} AND {c} < {hi}").format(
        c=column, lo=sql.Literal(key_range[0]), hi=sql.Literal(key_range[1])
    )


def target_checksum(
    pg: psycopg.Connection,
    plan: TablePlan,
    schema: Place,
    key_range: tuple[int, int] | None = None,
) -> Checksum:
    rows, total = pg.execute(
        sql.SQL("SELECT count(*), coalesce(sum({h}), 0) FROM {t} WHERE {w}").format(
            h=row_hash_sql(plan.hash_columns),
            t=qualified(schema, plan.name),
            w=_range_condition(plan, key_range),
        )
    ).fetchone()
    return Checksum.of(rows, total)


def column_checksums(
    src: sqlite3.Connection, pg: psycopg.Connection, plan: TablePlan, schema: Place,
    exclude: set[Key],
) -> dict[str, tuple[int, int]]:  # fmt: skip
    """Per column (source, target) checksum: the sum of its values' one-field tuple hashes."""
    encoders = [TupleEncoder(pg, [c.pg_type.kind]) for c in plan.columns]
    sums = [0] * len(plan.columns)
    for _key, values in source_rows(src, plan, exclude):
        for i, value in enumerate(values):
            sums[i] += encoders[i].hashes([[value]])[0]
    target = pg.execute(
        sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(
                sql.SQL("coalesce(sum({}), 0)").format(row_hash_sql([(c.pg_type.kind, c.name)]))
                for c in plan.columns
            ),
            qualified(schema, plan.name),
        )
    ).fetchone()
    return {
        c.source: (s % MOD, int(t) % MOD)
        for c, s, t in zip(plan.columns, sums, target, strict=True)
    }


def _target_rows(
    pg: psycopg.Connection, plan: TablePlan, schema: Place, key_range: tuple[int, int] | None
) -> dict[Key, list[str | None]]:
    """Canonical text of each column of the target rows in a key range, by key."""
    rows = pg.execute(
        sql.SQL("SELECT {keys}, {values} FROM {t} WHERE {w}").format(
            keys=sql.SQL(", ").join(sql.Identifier(plan.column(k).name) for k in key_columns(plan)),
            values=sql.SQL(", ").join(
                canonical.value_sql(c.pg_type.kind, sql.Identifier(c.name)) for c in plan.columns
            ),
            t=qualified(schema, plan.name),
            w=_range_condition(plan, key_range),
        )
    ).fetchall()
    width = len(key_columns(plan))
    return {tuple(row[:width]): list(row[width:]) for row in rows}


def _canonical_values(plan: TablePlan, values: Sequence[object]) -> list[str | None]:
    return [
        None if v is None else canonical.PYTHON[c.pg_type.kind](v)
        for c, v in zip(plan.columns, values, strict=True)
    ]


def _compare_leaf(
    src: sqlite3.Connection, pg: psycopg.Connection, plan: TablePlan, schema: Place,
    exclude: set[Key], key_range: tuple[int, int] | None,
) -> list[dict[str, object]]:  # fmt: skip
    source = {
        key: _canonical_values(plan, values)
        for key, values in source_rows(src, plan, exclude, key_range)
    }
    target = _target_rows(pg, plan, schema, key_range)
    found = []
    for key in sorted(source.keys() | target.keys(), key=repr):
        here, there = source.get(key), target.get(key)
        if here == there:
            continue
        entry: dict[str, object] = {"key": dict(zip(key_columns(plan), key, strict=True))}
        if there is None:
            entry["divergence"] = "missing in target"
        elif here is None:
            entry["divergence"] = "extra in target"
        else:
            entry["divergence"] = "values differ"
            entry["columns"] = {
                c.source: {"source": a, "target": b}
                for c, a, b in zip(plan.columns, here, there, strict=True)
                if a != b
            }
        found.append(entry)
    return found


def _key_bounds(
    src: sqlite3.Connection, pg: psycopg.Connection, plan: TablePlan, schema: Place
) -> tuple[int, int]:
    key = integer_key(plan) or ""
    low, high = src.execute(
        f"SELECT min({sqlite_quote(key)}), max({sqlite_quote(key)}) FROM "
        f"{sqlite_quote(plan.table.name)} WHERE typeof({sqlite_quote(key)}) = 'integer'"
    ).fetchone()
    t_low, t_high = pg.execute(
        sql.SQL("SELECT min({k}), max({k}) FROM {t}").format(
            k=sql.Identifier(plan.column(key).name), t=qualified(schema, plan.name)
        )
    ).fetchone()
    lows = [v for v in (low, t_low) if v is not None]
    highs = [v for v in (high, t_high) if v is not None]
    return (min(lows), max(highs) + 1) if lows else (0, 0)


def locate(
    src: sqlite3.Connection,
    pg: psycopg.Connection,
    plan: TablePlan,
    schema: Place,
    exclude: set[Key],
    limit: int = 10,
) -> tuple[list[dict[str, object]], str]:
    """Up to ``limit`` divergent keys, and how they were found.

    An integer key is bisected by range; another key (text, composite) is compared key by
    key over the whole table; a table without a key can only compare row-hash multisets.
    """
    if integer_key(plan) is None:
        if key_columns(plan):
            found = _compare_leaf(src, pg, plan, schema, exclude, None)
            return found[:limit], "key-by-key comparison (no integer key to bisect)"
        return _locate_by_scan(src, pg, plan, schema, exclude, limit)
    pending = [_key_bounds(src, pg, plan, schema)]
    found: list[dict[str, object]] = []
    probes = 0
    while pending and len(found) < limit:
        low, high = pending.pop(0)
        if high <= low:
            continue
        probes += 1
        if source_checksum(src, pg, plan, exclude, (low, high)) == target_checksum(
            pg, plan, schema, (low, high)
        ):
            continue
        if high - low <= LEAF_KEYS:
            found += _compare_leaf(src, pg, plan, schema, exclude, (low, high))
        else:
            middle = (low + high) // 2
            pending += [(low, middle), (middle, high)]
    return found[:limit], f"key-range bisection ({probes} range checksums per side)"


def _locate_by_scan(
    src: sqlite3.Connection, pg: psycopg.Connection, plan: TablePlan, schema: Place,
    exclude: set[Key], limit: int,
) -> tuple[list[dict[str, object]], str]:  # fmt: skip
    """Tables without a key: compare row hashes as multisets (a hash-only scan)."""
    encoder = TupleEncoder(pg, [c.pg_type.kind for c in plan.columns])
    source = Counter(encoder.hashes([values for _key, values in source_rows(src, plan, exclude)]))
    target = Counter(
        h
        for (h,) in pg.execute(
            sql.SQL("SELECT {} FROM {}").format(
                row_hash_sql(plan.hash_columns), qualified(schema, plan.name)
            )
        )
    )
    missing, extra = source - target, target - source
    found: list[dict[str, object]] = [
        {"row_hash": f"{h % MOD:016x}", "divergence": "missing in target", "count": n}
        for h, n in missing.items()
    ] + [
        {"row_hash": f"{h % MOD:016x}", "divergence": "extra in target", "count": n}
        for h, n in extra.items()
    ]
    return found[:limit], "row-hash comparison (the table has no key)"


def check_checksum(
    src: sqlite3.Connection,
    pg: psycopg.Connection,
    plan: TablePlan,
    schema: Place,
    expected: Checksum | None,
    exclude: set[Key],
    target: Checksum,
) -> CheckReport:
    """Source content (streamed by the load, or recomputed) against the ``target``'s
    (``target_checksum``)."""
    source = expected or source_checksum(src, pg, plan, exclude)
    metadata: dict[str, object] = {
        "source_rows": source.rows,
        "target_rows": target.rows,
        "source_checksum": f"{source.value:016x}",
        "target_checksum": f"{target.value:016x}",
    }
    if source == target:
        return CheckReport("checksum", True, f"content identical: {target} on both sides", metadata)
    columns = [
        name for name, (a, b) in column_checksums(src, pg, plan, schema, exclude).items() if a != b
    ]
    keys, method = locate(src, pg, plan, schema, exclude)
    metadata |= {"differing_columns": columns, "divergent_keys": keys, "locator": method}
    return CheckReport(
        "checksum",
        False,
        f"content differs (source {source}, target {target}) in columns "
        f"{', '.join(columns) or '(none: rows differ)'}: {divergences(keys)}",
        metadata,
    )


def quarantined_keys(pg: psycopg.Connection, plan: TablePlan, run_id: str | None) -> set[Key]:
    """Keys of a run's quarantined rows of this table, to leave out of the source side."""
    if run_id is None or not key_columns(plan):
        return set()
    names = key_columns(plan)
    return {
        tuple(key[n] for n in names)
        for key in bookkeeping.quarantined_keys(pg, run_id, plan.table.name)
        if isinstance(key, dict) and all(n in key for n in names)
    }

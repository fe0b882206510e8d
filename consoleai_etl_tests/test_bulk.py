"""Bulk (column-at-a-time) conversion gives exactly the per-value result, or steps aside."""

from __future__ import annotations

from dataclasses import replace

import pytest

from consoleai_etl.core.encode.bulk import bulk_for
from consoleai_etl.core.encode.codec import ColumnCodec
from consoleai_etl.core.errors import ConversionError
from consoleai_etl.core.plan.rules import DEFAULT_RULE
from consoleai_etl.core.plan.table_plan import ColumnPlan, PgType
from consoleai_etl.core.source.connection import InvalidText
from consoleai_etl.core.types import builtin

NUMERIC = PgType("numeric", "numeric(6,2)", None, 6, 2)
CLEAN = {  # values every converter accepts, in forms the bulk path takes
    PgType("timestamp", "timestamp"): ["2024-01-02 03:04:05", "2024-01-02T03:04:05.123456"],
    PgType("timestamptz", "timestamptz"): ["2024-01-02 03:04:05", "1999-12-31"],
    PgType("date", "date"): ["2024-01-02", "0001-01-01"],
    PgType("boolean", "boolean"): [0, 1, 1.0, -0.0],
    PgType("jsonb", "jsonb"): ['{"b": 1, "aa": [1, 2.50]}', "[]", '"x"', '{"a":1,"a":2}'],
    NUMERIC: [0, 1234, 1234.5, -0.0, 0.01, 9999.99],
}
ASIDE = {  # values the bulk path must leave to the per-value converter
    PgType("timestamp", "timestamp"): [" 2024-01-02 03:04:05", "2024-01-02 03:04:05+02:00", 3],
    PgType("timestamptz", "timestamptz"): ["2024-01-02 03:04:05+02:00", 2460000.5],
    PgType("date", "date"): ["2024-01-02 00:00:00", "2024-01-02 10:00:00", 19000],
    PgType("boolean", "boolean"): ["t", "no", 2],
    PgType("jsonb", "jsonb"): ["{bad", 7, InvalidText(b"\xff"), '["' + "x" * 2000 + '"]'],
    NUMERIC: [1.005, 10000, "12.5", float("nan"), b"1"],
}


def _codec(pg_type: PgType, not_null: bool = False) -> ColumnCodec:
    column = ColumnPlan("c", "c", pg_type.sql, {}, pg_type, not_null, False, None, "", DEFAULT_RULE)
    return ColumnCodec(column, builtin.converter(pg_type), bulk=bulk_for(pg_type))


def _per_value(codec: ColumnCodec, values: list[object]) -> list[object]:
    return [codec(v) for v in values]


@pytest.mark.parametrize("pg_type", list(CLEAN), ids=lambda t: t.sql)
def test_clean_columns_convert_in_bulk_exactly_as_value_by_value(pg_type: PgType) -> None:
    codec, values = _codec(pg_type), CLEAN[pg_type] * 3
    bulk = codec.bulk(values)
    assert bulk is not None, "the bulk form should vouch for clean values"
    expected = _per_value(codec, values)
    assert bulk == expected
    assert [type(v) for v in bulk] == [type(v) for v in expected]
    assert [str(v) for v in bulk] == [str(v) for v in expected]  # Decimal scale, tzinfo
    with_nulls = [None, *values, None]
    assert codec.column(with_nulls) == [None, *expected, None]


@pytest.mark.parametrize("pg_type", list(ASIDE), ids=lambda t: t.sql)
def test_values_the_bulk_form_cannot_vouch_for_go_value_by_value(pg_type: PgType) -> None:
    codec = _codec(pg_type)
    for odd in ASIDE[pg_type]:
        values = [*CLEAN[pg_type], odd]
        try:
            expected = _per_value(codec, values)
        except ConversionError:
            with pytest.raises(ConversionError):
                codec.column(values)
        else:
            converted = codec.column(values)
            assert converted == expected
            assert [str(v) for v in converted] == [str(v) for v in expected]


def test_a_null_in_a_not_null_column_is_refused_not_bulked() -> None:
    codec = _codec(PgType("boolean", "boolean"), not_null=True)
    with pytest.raises(ConversionError, match="NULL in a NOT NULL column"):
        codec.column([0, None, 1])


def test_text_repair_rules_turn_the_bulk_form_off() -> None:
    from consoleai_etl.core.encode.codec import codec_for

    column = _codec(PgType("jsonb", "jsonb")).plan
    column = replace(column, observed={"text": 1})
    assert codec_for(column).bulk is not None
    repaired = replace(column, rule=replace(DEFAULT_RULE, text_repair=("strip_nul",)))
    assert codec_for(repaired).bulk is None

"""Enum types of the application's schema (merge mode): a value must be one of the
type's labels, exactly (PostgreSQL compares labels case-sensitively); the labels are read
from the target's catalog with the table."""

from __future__ import annotations

from consoleai_etl.core.encode.convert import refuse
from consoleai_etl.core.source.connection import InvalidText
from consoleai_etl.core.types.family import Converter, Options
from consoleai_etl.core.types.pgtype import PgType

TAKES = frozenset({"text"})


def enum_type(sql: str, labels: tuple[str, ...]) -> PgType:
    return PgType("text", sql, family="enum", detail=labels, staged="text")


def converter(pg_type: PgType, options: Options) -> Converter:
    labels = frozenset(pg_type.detail)
    listed = ", ".join(pg_type.detail[:8]) + (", ..." if len(pg_type.detail) > 8 else "")

    def to_label(value: object) -> str:
        if type(value) is str and not isinstance(value, InvalidText) and value in labels:
            return value
        raise refuse(value, pg_type.sql, f"not one of its labels ({listed})")

    return to_label

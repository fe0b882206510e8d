"""Domains of the application's schema (merge mode): a value converts as the domain's base
type does; the domain's own constraints (CHECK, NOT NULL) are PostgreSQL's to judge, so
the staged values are tried against the domain before the column is retyped, and the rows
it refuses are quarantined with the domain's reason (``constraints.retype_columns``)."""

from __future__ import annotations

from consoleai_etl.core.types.pgtype import PgType


def domain_type(sql: str, base: PgType, constrained: bool) -> PgType:
    """``sql`` over ``base``; ``constrained``: it has a CHECK or NOT NULL of its own."""
    return PgType(
        base.kind, sql, base.length, base.precision, base.scale, "domain",
        (base, constrained), staged=base.staged_sql,
    )  # fmt: skip


def base(pg_type: PgType) -> PgType:
    return pg_type.detail[0]


def constrained(pg_type: PgType) -> bool:
    return pg_type.family == "domain" and pg_type.detail[1]

"""Declared SQLite types and the PostgreSQL types they suggest.

The bottom of the planning stack: the planner (``plan``) and the casting rules (``rules``)
both read declarations through this module, and neither imports the other for it.
A declaration is only a suggestion in SQLite (it enforces neither lengths nor, outside
STRICT tables, types); the planner lets the stored values overrule it.
"""

from __future__ import annotations

import re

from consoleai_etl.core.types.pgtype import PgType

STORAGE_CLASSES = ("integer", "real", "text", "blob", "null")


_TYPE_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_ ]*?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")


def declared_pg_type(declared: str) -> PgType | None:
    """The PostgreSQL type for a declared SQLite type, or None when it says nothing usable."""
    match = _TYPE_RE.match(declared)
    if not match:
        return None
    base = " ".join(match.group(1).upper().split())
    first = int(match.group(2)) if match.group(2) else None
    second = int(match.group(3)) if match.group(3) else None
    if base in ("BOOLEAN", "BOOL"):
        return PgType("boolean", "boolean")
    if base == "DATE":
        return PgType("date", "date")
    if base in ("DATETIME", "TIMESTAMP", "TIMESTAMP WITHOUT TIME ZONE"):
        return PgType("timestamp", "timestamp")
    if base in ("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"):
        return PgType("timestamptz", "timestamptz")
    if base in ("JSON", "JSONB"):
        return PgType("jsonb", "jsonb")
    if "INT" in base:
        return PgType("bigint", "bigint")
    if base in ("NUMERIC", "DECIMAL"):
        if first is None:
            return PgType("numeric", "numeric")
        if not 1 <= first <= 1000 or (second or 0) > first:
            return None
        return PgType("numeric", f"numeric({first},{second or 0})", None, first, second or 0)
    if base in ("REAL", "DOUBLE", "DOUBLE PRECISION", "FLOAT"):
        return PgType("double", "double precision")
    if any(word in base for word in ("CHAR", "CLOB", "TEXT")):
        if first and "CHAR" in base:
            return PgType("text", f"varchar({first})", first)
        return PgType("text", "text")
    if base in ("BLOB", "BYTEA"):
        return PgType("bytea", "bytea")
    return None

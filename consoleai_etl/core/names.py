"""Identifier mapping: PostgreSQL's 63-byte limit and Dagster's ``[A-Za-z0-9_]`` names.

Both mappings are deterministic (a hash of the full name, not a counter that depends on
order), so the same source always yields the same target names and asset keys.
"""

from __future__ import annotations

import hashlib
import re

PG_MAX_IDENTIFIER_BYTES = 63


def _digest(name: str, length: int = 8) -> str:
    return hashlib.sha1(name.encode("utf-8")).hexdigest()[:length]


def pg_identifier(name: str) -> str:
    """``name`` itself when PostgreSQL can hold it, else a prefix plus a hash of the whole."""
    if len(name.encode("utf-8")) <= PG_MAX_IDENTIFIER_BYTES:
        return name
    suffix = "_" + _digest(name)
    budget = PG_MAX_IDENTIFIER_BYTES - len(suffix)
    prefix = name.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return prefix + suffix


def derived_identifier(*parts: str) -> str:
    """A constraint or index name built from parts (table, columns, kind), within 63 bytes."""
    return pg_identifier("_".join(parts))


_DAGSTER_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def dagster_name(name: str) -> str:
    """A Dagster-valid name for a table; names that had to change carry a hash of the original."""
    safe = _DAGSTER_UNSAFE.sub("_", name)
    if safe == name and safe:
        return safe
    return f"{safe.strip('_') or 'table'}_{_digest(name, 6)}"

"""Identifier mapping: PostgreSQL's 63-byte limit and Dagster's ``[A-Za-z0-9_]`` names.

Both mappings are deterministic (a hash of the full name, not a counter that depends on
order), so the same source always yields the same target names and asset keys.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Set

PG_MAX_IDENTIFIER_BYTES = 63
# PostgreSQL refuses a zero-length identifier; SQLite accepts "" as a table or column name.
EMPTY_NAME = "(empty name)"


def _digest(name: str, length: int = 8) -> str:
    return hashlib.sha1(name.encode("utf-8")).hexdigest()[:length]


def pg_identifier(name: str) -> str:
    """``name`` itself when PostgreSQL can hold it, else a prefix plus a hash of the whole
    (and ``EMPTY_NAME`` for the empty name)."""
    if not name:
        return EMPTY_NAME
    if len(name.encode("utf-8")) <= PG_MAX_IDENTIFIER_BYTES:
        return name
    suffix = "_" + _digest(name)
    budget = PG_MAX_IDENTIFIER_BYTES - len(suffix)
    prefix = name.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return prefix + suffix


# The system columns every PostgreSQL table has: no column of its own may be named so
# (SQLite's may). Exact spellings only: a quoted "XMin" is another name.
SYSTEM_COLUMNS = frozenset({"ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"})


def pg_column(name: str) -> str:
    """A column's PostgreSQL name: ``pg_identifier``'s, except that a system column's name
    gets a hash of itself, as a long name does (``xmin`` -> ``xmin_<hash>``), so that no
    other source name can be spelled like it."""
    return f"{name}_{_digest(name)}" if name in SYSTEM_COLUMNS else pg_identifier(name)


def renamed_because(name: str) -> str:
    """Why ``pg_identifier`` or ``pg_column`` changed ``name``, for the warning that
    reports it."""
    if not name:
        return "PostgreSQL refuses an empty name"
    if name in SYSTEM_COLUMNS:
        return "PostgreSQL keeps the name for a system column"
    return "63-byte limit"


def derived_identifier(*parts: str) -> str:
    """A constraint or index name built from parts (table, columns, kind), within 63 bytes."""
    return pg_identifier("_".join(parts))


def pg_clashes(
    names: Iterable[str], mapped: Callable[[str], str] = pg_identifier
) -> list[tuple[str, ...]]:
    """Groups of distinct source names that ``mapped`` (``pg_identifier``, or ``pg_column``
    for columns) maps to one PostgreSQL name (a shortened long name, or ``EMPTY_NAME``,
    spelled out by another name), sorted."""
    groups: dict[str, list[str]] = {}
    for name in sorted(set(names)):
        groups.setdefault(mapped(name), []).append(name)
    return [tuple(group) for group in groups.values() if len(group) > 1]


_DAGSTER_VALID = re.compile(r"[A-Za-z0-9_]+")
# A derived name ends with "__" and a hex digest; a source name ending so is derived too,
# so a name kept as is can never equal a derived one.
_DERIVED = re.compile(r"__[0-9a-f]{8,}\Z")
_NOT_WORD = re.compile(r"[^A-Za-z0-9]+")


def _readable(name: str) -> str:
    """The ASCII letters and digits of ``name`` (accents dropped: ``Émile`` -> ``Emile``),
    runs of anything else as one ``_``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return _NOT_WORD.sub("_", ascii_name).strip("_") or "table"


def dagster_name(name: str, reserved: Set[str] = frozenset(), *, long: bool = False) -> str:
    """A valid Dagster name for a table: the name itself when Dagster accepts it and it is
    not ``reserved``, else its readable part plus a hash of the exact name
    (``order-items`` -> ``order_items__89455f5c``; ``long``: the whole SHA-256).

    Kept names never match the derived form (``__`` + hex at the end), and two derived
    names are equal only when their hashes are: ``dagster_names`` settles even that."""
    if _DAGSTER_VALID.fullmatch(name) and name not in reserved and not _DERIVED.search(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    return f"{_readable(name)}__{digest if long else digest[:8]}"


def dagster_names(names: Iterable[str], reserved: Set[str] = frozenset()) -> dict[str, str]:
    """``dagster_name`` of each name, unique across ``names``: names whose short derived
    form another name shares get the long one (SHA-256 collisions aside, long forms never
    clash), until none is shared. It depends on the set of names only, not their order."""
    distinct = sorted(set(names))
    long: set[str] = set()
    while True:
        mapped = {n: dagster_name(n, reserved, long=n in long) for n in distinct}
        holders: dict[str, list[str]] = {}
        for name, result in mapped.items():
            holders.setdefault(result, []).append(name)
        shared = {n for group in holders.values() if len(group) > 1 for n in group} - long
        if not shared:
            return mapped
        long |= shared

"""What a SQLite column default stores, asked of SQLite itself.

A default's meaning is the value SQLite stores when it applies, after the column's type
affinity: ``DEFAULT '5'`` in a DATETIME column (NUMERIC affinity) stores the integer 5,
``DEFAULT 5`` in a TEXT column the text '5', ``DEFAULT (1 + 1)`` the integer 2. Rather than
copy SQLite's affinity and expression rules, the default is evaluated by an in-memory SQLite
as a generated column of the same declared type: SQLite applies the affinity, and refuses an
expression whose value depends on when the row is written (``CURRENT_TIMESTAMP``,
``datetime('now')``, ``random()``), which generated columns may not use.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Constant:
    """The value a constant default stores (int, float, str, bytes, or None for NULL)."""

    value: object


@dataclass(frozen=True)
class Computed:
    """A default SQLite computes when a row is written, or cannot evaluate on its own
    (an application-defined function): ``why`` is SQLite's word for it."""

    why: str

    @property
    def at_write_time(self) -> bool:
        return "non-deterministic" in self.why


@lru_cache(maxsize=4096)  # a table is planned several times (guess, measure, widen)
def stored_default(declared_type: str, default_sql: str) -> Constant | Computed:
    """The value SQLite stores for ``default_sql`` in a column declared ``declared_type``.

    Both come from the source's own schema (``PRAGMA table_info``), which SQLite parsed as
    a type name and one expression; they are evaluated in a private in-memory database
    (about 0.15 ms), once per pair."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(f"CREATE TABLE d(x, v {declared_type} AS ({default_sql}))")
        conn.execute("INSERT INTO d(x) VALUES (NULL)")
        (value,) = conn.execute("SELECT v FROM d").fetchone()
    except sqlite3.Error as exc:
        return Computed(str(exc))
    finally:
        conn.close()
    return Constant(value)

"""Which target a run writes into, by name: the database a DSN connects to, and the schema.

The code location keys its assets by it (``defs.checks.key_prefix``): a table migrated
into two databases is two assets, each with a history of its own, as a table loaded by
dagster-sling is keyed by where it lands. The name is read from the DSN by libpq's own
defaults, without connecting: the definitions are built before any run, and the server may
not be up yet.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict

from consoleai_etl.core.target.postgres import redact

# The database of the embedded server (pgserver connects as user postgres to the database
# of that name), used when no DSN is set.
EMBEDDED_DATABASE = "postgres"
DEFAULT_SCHEMA = "public"


@dataclass(frozen=True)
class TargetName:
    database: str
    schema: str

    @classmethod
    def of(cls, dsn: str | None, schema: str | None) -> TargetName:
        """The target of DSN ``dsn`` (None: the embedded server) and ``schema`` (None: the
        default schema)."""
        return cls(database_of(dsn), schema or DEFAULT_SCHEMA)

    def __str__(self) -> str:
        return f"database {self.database!r}, schema {self.schema!r}"


def database_of(dsn: str | None) -> str:
    """The database ``dsn`` connects to, by libpq's rules: its ``dbname``, else PGDATABASE,
    else the user's name (its ``user``, else PGUSER, else the operating system's user). A
    DSN libpq cannot parse names itself (redacted): the run's preflight refuses it."""
    if dsn is None:
        return EMBEDDED_DATABASE
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return redact(dsn)
    user = params.get("user") or os.environ.get("PGUSER") or getpass.getuser()
    return str(params.get("dbname") or os.environ.get("PGDATABASE") or user)

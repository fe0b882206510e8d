"""The DuckDB peer for `make bench`: every table of the SQLite file into PostgreSQL, DuckDB's way.

    python benchmarks/duckdb_copy.py SOURCE.sqlite DSN

DuckDB attaches the SQLite file and the PostgreSQL database through its ``sqlite`` and
``postgres`` extensions and runs ``CREATE TABLE pg.public.t AS SELECT * FROM src.t`` for each
table: the types its sqlite scanner infers from the declarations, no keys, no checks. The
extensions come from the ``duckdb-ext-sqlite`` and ``duckdb-ext-postgres`` wheels (the
``bench`` extra), loaded from the folder they install into: nothing is downloaded at run
time, and installing and autoloading are switched off so that a missing file fails here
instead of fetching one. Like ``raw_copy.py`` it imports nothing from the product (that
would load Dagster into the measured process).
"""

from __future__ import annotations

import sys
from importlib.metadata import distribution

import duckdb

# The wheels put their files under duckdb_ext/extensions/<DuckDB version>/<platform>/, the
# layout of an extension_directory: DuckDB picks its own version's folder.
EXTENSIONS = distribution("duckdb-ext-sqlite").locate_file("duckdb_ext/extensions")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _identifier(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def main(source: str, dsn: str) -> int:
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET extension_directory = ?", [str(EXTENSIONS)])
    con.execute("LOAD sqlite")
    con.execute("LOAD postgres")
    # ATTACH takes no parameters: its paths are quoted literals.
    con.execute(f"ATTACH {_literal(source)} AS src (TYPE sqlite, READ_ONLY)")
    con.execute(f"ATTACH {_literal(dsn)} AS pg (TYPE postgres)")
    tables = con.execute(
        "SELECT table_name FROM duckdb_tables() "
        "WHERE database_name = 'src' AND table_name NOT LIKE 'sqlite_%' ORDER BY table_name"
    ).fetchall()
    for (table,) in tables:
        name = _identifier(table)
        con.execute(f"CREATE TABLE pg.public.{name} AS SELECT * FROM src.main.{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

"""The privileges a run needs, checked in its preflight (a dry run's too), as a user who
is not a superuser: one line naming each GRANT that is missing, nothing written; with them
granted, the run goes through. And a dry run refused where the real run would be."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from psycopg import sql

from consoleai_etl_tests.helpers import execute, fetch
from consoleai_etl_tests.test_console_script import consoleai_etl


@pytest.fixture
def role(pg_dsn: str) -> Iterator[str]:
    """A login role with no privilege of its own in the test's database."""
    name = f"etl_{uuid.uuid4().hex[:8]}"
    execute(pg_dsn, sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    yield name
    execute(pg_dsn, sql.SQL("DROP OWNED BY {0}; DROP ROLE {0}").format(sql.Identifier(name)))


def legacy(tmp_path: Path) -> Path:
    source = tmp_path / "legacy.sqlite"
    with closing(sqlite3.connect(source)) as conn, conn:
        conn.executescript(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
            "INSERT INTO notes VALUES (1, 'a'), (2, 'b');"
        )
    return source


def refusal(done) -> str:
    assert done.returncode == 1, done.stderr[-2000:]
    return done.stderr.splitlines()[-1]


@pytest.mark.parametrize("dry_run", [False, True])
def test_each_missing_grant_is_named_before_anything_is_written(
    tmp_path: Path, pg_dsn: str, role: str, dry_run: bool
) -> None:
    source, as_role = legacy(tmp_path), f"{pg_dsn} user={role}"
    dbname = fetch(pg_dsn, "SELECT current_database()")[0][0]
    flags = ["--dry-run"] if dry_run else []

    line = refusal(consoleai_etl(tmp_path, "migrate", str(source), as_role, *flags))
    assert f"user {role} lacks privileges this run needs" in line
    assert (
        f'GRANT CREATE ON DATABASE "{dbname}" TO "{role}" '
        f'(or CREATE SCHEMA "consoleai_etl" AUTHORIZATION "{role}")'
    ) in line
    assert f'GRANT CREATE, USAGE ON SCHEMA "public" TO "{role}"' in line  # PostgreSQL 15
    assert fetch(pg_dsn, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'consoleai%'") == [
        (0,)
    ]

    execute(pg_dsn, sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
        sql.Identifier(dbname), sql.Identifier(role)))  # fmt: skip
    line = refusal(consoleai_etl(tmp_path, "migrate", str(source), as_role, *flags))
    assert "GRANT CREATE ON DATABASE" not in line and 'ON SCHEMA "public"' in line

    execute(pg_dsn, sql.SQL("GRANT CREATE, USAGE ON SCHEMA public TO {}").format(
        sql.Identifier(role)))  # fmt: skip
    done = consoleai_etl(tmp_path, "migrate", str(source), as_role, *flags)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = fetch(pg_dsn, "SELECT count(*) FROM pg_tables WHERE tablename = 'notes'")
    assert loaded == [(0 if dry_run else 1,)]


def test_schemas_an_administrator_made_for_the_user_are_enough(
    tmp_path: Path, pg_dsn: str, role: str
) -> None:
    """The target schema and consoleai_etl owned by the user, no CREATE on the database:
    a first run, a second (replacing the first's tables), a merge and a dry run go
    through, the run staging in consoleai_etl; the promoted table has the names a direct
    load gives (its key, its identity sequence) and nothing staged is left. Into a schema
    the user may not create in, the real run and the dry run both stop naming the GRANT."""
    execute(pg_dsn, sql.SQL(
        "CREATE SCHEMA app AUTHORIZATION {0}; CREATE SCHEMA consoleai_etl AUTHORIZATION {0};"
        "CREATE SCHEMA other"
    ).format(sql.Identifier(role)))  # fmt: skip
    may_create = "SELECT has_database_privilege(%s, current_database(), 'CREATE')"
    assert fetch(pg_dsn, may_create, (role,)) == [(False,)]
    source, as_role = str(legacy(tmp_path)), f"{pg_dsn} user={role}"

    for mode in ("replace", "replace", "merge"):
        done = consoleai_etl(
            tmp_path, "migrate", source, as_role, "--schema", "app", "--mode", mode
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert fetch(pg_dsn, "SELECT id, body FROM app.notes ORDER BY id") == [(1, "a"), (2, "b")]
    done = consoleai_etl(tmp_path, "migrate", source, as_role, "--schema", "app", "--dry-run")
    assert done.returncode == 0, done.stderr[-2000:]

    assert fetch(pg_dsn, "SELECT pg_get_serial_sequence('app.notes', 'id')") == [
        ("app.notes_id_seq",)
    ]
    assert fetch(
        pg_dsn,
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'app.notes'::regclass",
    ) == [("app.notes_pkey",)]
    assert (
        fetch(
            pg_dsn,
            "SELECT relname FROM pg_class WHERE relnamespace = 'consoleai_etl'::regnamespace "
            "AND relname LIKE 'stage%'",
        )
        == []
    )
    assert fetch(
        pg_dsn, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'consoleai_etl_%'"
    ) == [(0,)]
    grant = f'GRANT CREATE, USAGE ON SCHEMA "other" TO "{role}"'
    for flags in ([], ["--dry-run"]):
        line = refusal(
            consoleai_etl(tmp_path, "migrate", source, as_role, "--schema", "other", *flags)
        )
        assert grant in line and "DATABASE" not in line, line
    assert fetch(pg_dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'other'") == [(0,)]


def test_a_dry_run_is_refused_where_the_real_run_would_be(tmp_path: Path, pg_dsn: str) -> None:
    """An application's table of a source table's name: the real run would refuse to
    replace it, so the dry run does too."""
    execute(pg_dsn, "CREATE TABLE notes (id integer PRIMARY KEY, body text)")
    source = legacy(tmp_path)

    real = refusal(consoleai_etl(tmp_path, "migrate", str(source), pg_dsn))
    dry = refusal(consoleai_etl(tmp_path, "migrate", str(source), pg_dsn, "--dry-run"))

    assert "notes" in real and dry.split(": ", 1)[1] == real.split(": ", 1)[1]
    assert fetch(pg_dsn, "SELECT count(*) FROM notes") == [(0,)]
    # In the command line's words, the flags that are the ways out; no variable.
    assert "migrate into another schema (--schema)" in real
    assert "set --replace-existing to replace them" in real and "(merge mode: --mode merge)" in real
    assert "CONSOLEAI_" not in real and "\u27e8" not in real

    done = consoleai_etl(tmp_path, "migrate", str(source), pg_dsn, "--replace-existing")
    assert done.returncode == 0, done.stderr[-2000:]
    assert fetch(pg_dsn, "SELECT id, body FROM notes ORDER BY id") == [(1, "a"), (2, "b")]

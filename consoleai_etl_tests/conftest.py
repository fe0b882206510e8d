"""Fixtures: a real PostgreSQL (a fresh database per test), real SQLite files, real runs.

The server is ``CONSOLEAI_TEST_PG_DSN`` (default: the local one on 127.0.0.1:5432); when it
cannot be reached, an embedded server from the ``pgserver`` package is started instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Page
from psycopg import sql
from psycopg.conninfo import make_conninfo

from consoleai_etl.core.target.postgres import embedded_dsn
from consoleai_etl.demo.sample import generate
from consoleai_etl_tests.browser import browser_page

DEFAULT_TEST_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def server_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    dsn = os.environ.get("CONSOLEAI_TEST_PG_DSN", DEFAULT_TEST_DSN)
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return dsn
    except psycopg.OperationalError:
        return embedded_dsn(tmp_path_factory.mktemp("embedded-postgres"))


@contextmanager
def fresh_database(server_dsn: str) -> Iterator[str]:
    """A DSN to a brand-new database on ``server_dsn``, dropped on exit."""
    name = f"consoleai_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(server_dsn, dbname=name)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def pg_dsn(server_dsn: str) -> Iterator[str]:
    """A DSN to a brand-new database, dropped after the test."""
    with fresh_database(server_dsn) as dsn:
        yield dsn


@pytest.fixture(scope="session")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean ConsoleAI sample database (about 5k rows), shared read-only by tests."""
    path = tmp_path_factory.mktemp("sample") / "consoleai_legacy.sqlite"
    generate(path, scale=0.05)
    return path


@pytest.fixture
def page() -> Iterator[Page]:
    """A page of a headless Chromium (``browser``); the test is skipped without one."""
    yield from browser_page()


@pytest.fixture(params=["compiled", "python"])
def stream(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with the loader's first pass compiled (``rowcopy``) and as without the
    extension: the Python stream, its rows hashed in Python (``rowhash``)."""
    from consoleai_etl.core.encode import rowcopy, rowhash, tuples

    if request.param == "python":
        monkeypatch.setattr(rowcopy, "compiled_source", lambda src: None)
        monkeypatch.setattr(tuples, "row_hashes", rowhash.row_hashes)
    return request.param

"""Never drop what it does not own: replace mode replaces only the tables and views an
earlier run promoted into the schema (``consoleai_etl.owned_relations``); an application's
own table of the same name stops the run in preflight, or at promotion when it appeared
after the preflight, unless the run says ``replace_existing``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from consoleai_etl.defs import settings
from consoleai_etl_tests.helpers import execute, fetch, preflight_error, run_job, run_raw

APP_TABLE = "CREATE TABLE public.customers (id int PRIMARY KEY, crm_note text)"
APP_ROWS = [(1, "VIP, call before shipping"), (2, "owes 40 EUR")]


def build_source(path: Path, names: list[str]) -> Path:
    """A legacy shop: customers (with the given names) and their orders, plus a view."""
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "DROP VIEW IF EXISTS big_orders; DROP TABLE IF EXISTS orders;"
            "DROP TABLE IF EXISTS customers;"
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
            "CREATE TABLE orders (id INTEGER PRIMARY KEY,"
            " customer_id INTEGER REFERENCES customers(id), total REAL);"
            "INSERT INTO orders VALUES (10, 1, 12.5), (11, 1, 99.0);"
            "CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 50;"
        )
        conn.executemany("INSERT INTO customers (name) VALUES (?)", [(n,) for n in names])
    return path


def create_app_table(dsn: str) -> None:
    execute(dsn, APP_TABLE)
    for row in APP_ROWS:
        execute(dsn, "INSERT INTO public.customers VALUES (%s, %s)", row)


def app_rows(dsn: str) -> list[tuple]:
    return fetch(dsn, "SELECT * FROM public.customers ORDER BY id")


def public_tables(dsn: str) -> set[str]:
    rows = fetch(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {name for (name,) in rows}


def assert_refusal(message: str, listing: str) -> None:
    assert message.startswith(f"schema public already has {listing}, not created by an earlier")
    assert "nothing is dropped" in message and "target_schema" in message
    assert "replace_existing: true" in message and "merge mode" in message
    assert "\n" not in message


def test_an_application_table_stops_the_run_in_preflight_and_keeps_its_rows(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = build_source(tmp_path / "shop.sqlite", ["Ada", "Grace"])
    create_app_table(pg_dsn)

    result = run_raw(db, pg_dsn, tmp_path / "reports")

    assert not result.success
    assert_refusal(preflight_error(result), "table customers")
    assert app_rows(pg_dsn) == APP_ROWS
    assert public_tables(pg_dsn) == {"customers"}  # orders was not promoted either
    assert fetch(pg_dsn, "SELECT 1 FROM pg_namespace WHERE nspname LIKE 'consoleai%'") == []


def test_an_application_view_named_like_a_source_view_stops_the_run(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = build_source(tmp_path / "shop.sqlite", ["Ada"])
    execute(pg_dsn, "CREATE VIEW public.big_orders AS SELECT 1 AS id")

    result = run_raw(db, pg_dsn, tmp_path / "reports")

    assert_refusal(preflight_error(result), "view big_orders")
    assert fetch(pg_dsn, "SELECT * FROM public.big_orders") == [(1,)]


@pytest.mark.parametrize("how", ["run_config", "env"])
def test_replace_existing_replaces_the_application_table(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    db = build_source(tmp_path / "shop.sqlite", ["Ada", "Grace"])
    create_app_table(pg_dsn)
    options = {"replace_existing": True}
    if how == "env":
        monkeypatch.setenv("CONSOLEAI_REPLACE_EXISTING", "true")
        options = {}

    result, report = run_job(db, pg_dsn, tmp_path / "reports", **options)

    assert result.success and report["status"] == "success" and report["promoted"]
    assert app_rows(pg_dsn) == [(1, "Ada"), (2, "Grace")]
    assert (
        "replaced table customers in schema public, which no earlier run created (replace_existing)"
    ) in report["warnings"]


def test_a_table_promoted_by_an_earlier_run_is_replaced_by_the_next(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = build_source(tmp_path / "shop.sqlite", ["Ada"])
    first, _ = run_job(db, pg_dsn, tmp_path / "first")
    build_source(db, ["Ada", "Grace", "Edsger"])

    result, report = run_job(db, pg_dsn, tmp_path / "second")

    assert first.success and result.success and report["status"] == "success"
    assert app_rows(pg_dsn) == [(1, "Ada"), (2, "Grace"), (3, "Edsger")]
    assert report["warnings"] == []  # nothing of somebody else's was replaced
    owned = fetch(
        pg_dsn,
        "SELECT o.name, o.run_id FROM consoleai_etl.owned_relations o "
        "JOIN pg_class c ON c.oid = o.relid AND c.relname = o.name ORDER BY o.name",
    )
    assert owned == [(n, result.run_id) for n in ("big_orders", "customers", "orders")]


def test_a_table_dropped_and_created_again_by_someone_else_is_not_ours(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = build_source(tmp_path / "shop.sqlite", ["Ada"])
    run_job(db, pg_dsn, tmp_path / "first")
    execute(pg_dsn, "DROP TABLE public.customers CASCADE")
    create_app_table(pg_dsn)  # same name, another object: its oid differs

    result = run_raw(db, pg_dsn, tmp_path / "second")

    assert_refusal(preflight_error(result), "table customers")
    assert app_rows(pg_dsn) == APP_ROWS


def test_a_table_created_after_the_preflight_fails_the_promotion_untouched(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = build_source(tmp_path / "shop.sqlite", ["Ada"])
    real_check = settings.check_ownership

    def check_then_app_creates_its_table(*args: object) -> None:
        real_check(*args)  # passes: the schema is empty
        create_app_table(pg_dsn)  # someone else, while the tables are being staged

    monkeypatch.setattr(settings, "check_ownership", check_then_app_creates_its_table)

    result, report = run_job(db, pg_dsn, tmp_path / "reports")

    assert not result.success and report["status"] == "failure" and not report["promoted"]
    [reason] = report["reasons"]
    assert reason.startswith("promotion failed, target unchanged: ")
    assert_refusal(reason.removeprefix("promotion failed, target unchanged: "), "table customers")
    assert app_rows(pg_dsn) == APP_ROWS
    assert public_tables(pg_dsn) == {"customers"}


def test_a_dry_run_stops_on_application_tables_as_the_real_run_would(
    tmp_path: Path, pg_dsn: str
) -> None:
    """A dry run says whether the real run would go through: it is refused the same way."""
    db = build_source(tmp_path / "shop.sqlite", ["Ada"])
    create_app_table(pg_dsn)

    dry = preflight_error(run_raw(db, pg_dsn, tmp_path / "reports", dry_run=True))
    real = preflight_error(run_raw(db, pg_dsn, tmp_path / "reports"))

    assert dry == real
    assert_refusal(dry, "table customers")
    # In a Dagster user's words: run config keys (and the variables a code location uses).
    assert "(target_schema (or CONSOLEAI_TARGET_SCHEMA))" in dry
    assert "set replace_existing: true (or CONSOLEAI_REPLACE_EXISTING=true) to replace" in dry
    assert app_rows(pg_dsn) == APP_ROWS

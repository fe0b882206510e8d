"""Runs into different targets keep histories of their own: every asset key begins with the
target's database and schema, so one table migrated into two databases (or two schemas) is
two assets in the Dagster instance, each with its own materializations and checks.

The command builds its graph for the target it is given; a code location's graph is built
for the target its variables name, and a run whose config names another target is refused
before anything is written (it would write that target's history on these assets).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import psycopg
import pytest

from consoleai_etl.core.target.naming import EMBEDDED_DATABASE, TargetName
from consoleai_etl.definitions import build_definitions
from consoleai_etl.defs.checks import key_prefix
from consoleai_etl.demo.sample import TABLE_ORDER
from consoleai_etl_tests.conftest import fresh_database
from consoleai_etl_tests.helpers import dagster_env, fetch, preflight_error, run_raw
from consoleai_etl_tests.test_console_script import consoleai_etl
from consoleai_etl_tests.test_migration_job import make_parent_child

TABLES = ("parent", "child")


def database(dsn: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]


def history(instance: dg.DagsterInstance, *path: str) -> list[tuple[str, str | None]]:
    """The materializations of the asset keyed ``path``, newest first: each one's run and
    the table it names (``dagster/table_name``; None for the run record and the report)."""
    records = instance.fetch_materializations(dg.AssetKey(list(path)), limit=100).records
    found = []
    for record in records:
        table = record.asset_materialization.metadata.get("dagster/table_name")
        found.append((record.run_id, None if table is None else table.value))
    return found


def test_the_command_keeps_a_history_per_target_in_one_instance(
    tmp_path: Path, pg_dsn: str, server_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One DAGSTER_HOME, one SOURCE, three targets: two databases, and another schema of
    the first. Each table has one asset per target, each holding only its own runs."""
    source = tmp_path / "legacy.sqlite"
    make_parent_child(source, [("a", 1), ("b", 2)])
    env = {
        k: v
        for k, v in dagster_env(tmp_path, source, pg_dsn).items()
        if not k.startswith("CONSOLEAI")
    }
    with fresh_database(server_dsn) as other_dsn:
        targets = [(pg_dsn, "public"), (other_dsn, "public"), (pg_dsn, "archive")]
        named = [(database(dsn), schema) for dsn, schema in targets]
        for dsn, schema in targets:
            done = consoleai_etl(
                tmp_path, "migrate", str(source), dsn, "--schema", schema,
                "--report-dir", str(tmp_path / "reports"), env=env,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr[-3000:]
        assert fetch(other_dsn, "SELECT count(*) FROM public.child") == [(2,)]
        again = consoleai_etl(
            tmp_path, "migrate", str(source), pg_dsn, "--report-dir", str(tmp_path / "r2"), env=env
        )
        assert again.returncode == 0, again.stderr[-3000:]

    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as instance:
        run_ids = [r.run_id for r in reversed(instance.get_runs())]  # oldest first
        assert len(run_ids) == 4
        by_target = dict(zip(named, run_ids[:3], strict=True))
        keys = {key.to_user_string() for key in instance.get_asset_keys()}
        for (db, schema), run_id in by_target.items():
            for table in TABLES:
                events = history(instance, db, schema, table)
                # The first target was migrated twice; each other target once.
                expected = [run_ids[3], run_id] if run_id == run_ids[0] else [run_id]
                assert [run for run, _ in events] == expected
                assert {name for _, name in events} == {f"{schema}.{table}"}
            report = history(instance, db, schema, "migration_report")
            assert [run for run, _ in report] == expected
    assert {f"{db}/{schema}/child" for db, schema in named} <= keys
    assert "child" not in keys  # no asset mixes the three targets


def test_a_run_into_another_target_than_its_graphs_is_refused_before_writing(
    tmp_path: Path, pg_dsn: str
) -> None:
    """The code location's graph is keyed by the target it was built for: a run whose
    config names another schema (or database) is refused in one line, in the words of run
    config and the variables, with nothing written."""
    source = tmp_path / "legacy.sqlite"
    make_parent_child(source, [("a", 1)])
    graph = TargetName(database(pg_dsn), "public")
    result = run_raw(source, pg_dsn, tmp_path / "r", graph_target=graph, target_schema="archive")
    assert not result.success
    message = preflight_error(result)
    assert message == (
        f"this run's target is database {database(pg_dsn)!r}, schema 'archive', but this code "
        f"location's assets are the tables of database {database(pg_dsn)!r}, schema 'public' "
        "(pg_dsn (or CONSOLEAI_PG_DSN) and target_schema (or CONSOLEAI_TARGET_SCHEMA) when it "
        "loaded): a run into another target would write its history on them; give the code "
        "location that target and reload it, or migrate it with consoleai-etl migrate"
    )
    assert fetch(pg_dsn, "SELECT to_regnamespace('archive'), to_regclass('public.child')") == [
        (None, None)
    ]
    assert not (tmp_path / "r").exists()


def test_a_code_locations_keys_name_the_target_its_variables_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dagster job execute -m consoleai_etl`` and the web UI build the graph for
    CONSOLEAI_PG_DSN's database and CONSOLEAI_TARGET_SCHEMA; unset, for the embedded
    server's database and ``public``; environments (partitions) keep plain table keys."""
    missing = tmp_path / "none.sqlite"
    for variable in ("CONSOLEAI_PG_DSN", "CONSOLEAI_TARGET_SCHEMA", "PGDATABASE"):
        monkeypatch.delenv(variable, raising=False)
    keys = build_definitions(missing).resolve_asset_graph().get_all_asset_keys()
    assert {tuple(k.path[:2]) for k in keys} == {(EMBEDDED_DATABASE, "public")}
    monkeypatch.setenv("CONSOLEAI_PG_DSN", "host=db.example.com user=app dbname=crm-prod")
    monkeypatch.setenv("CONSOLEAI_TARGET_SCHEMA", "Legacy Data")
    keys = build_definitions(missing).resolve_asset_graph().get_all_asset_keys()
    prefix = key_prefix(TargetName("crm-prod", "Legacy Data"))
    assert {tuple(k.path[:2]) for k in keys} == {prefix}
    assert {k.path[-1] for k in keys} == {*TABLE_ORDER, "migration_run", "migration_report"}
    assert all(part.isidentifier() for part in prefix)  # valid Dagster names, hashed


def test_a_targets_database_is_the_one_libpq_would_connect_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in ("PGDATABASE", "PGUSER"):
        monkeypatch.delenv(variable, raising=False)
    assert TargetName.of("postgresql://u@h:5432/crm", None) == TargetName("crm", "public")
    assert TargetName.of("host=h user=bob", "app") == TargetName("bob", "app")
    monkeypatch.setenv("PGUSER", "carol")
    assert TargetName.of("postgresql://h", None).database == "carol"
    monkeypatch.setenv("PGDATABASE", "sales")
    assert TargetName.of("postgresql://u@h", None).database == "sales"
    assert TargetName.of(None, None) == TargetName(EMBEDDED_DATABASE, "public")
    # A DSN libpq cannot parse still names a target, its password left out (the run's
    # preflight refuses the DSN in one line).
    unparsable = "host='unterminated password=x"
    assert TargetName.of(unparsable, None).database == "host='unterminated password=***"

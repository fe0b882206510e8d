"""The whole migration through real Dagster runs, into a real PostgreSQL database per test."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from dagster import DagsterEventType

from consoleai_etl.core.source.catalog import introspect
from consoleai_etl.core.source.connection import open_source
from consoleai_etl.demo.sample import TABLE_ORDER
from consoleai_etl_tests.helpers import (
    checks_by_table,
    execute,
    fetch,
    run_job,
    staged_tables,
    table_digest,
)

KEYS = {
    "roles": "id",
    "users": "id",
    "user_roles": "user_id, role_id",
    "api_tokens": "id",
    "workflows": "id",
    "workflow_runs": "id",
    "inventory_items": "sku",
    "ec2_instances": "instance_id",
    "audit_events": "id",
}


def source_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLE_ORDER}


def target_tables(dsn: str, schema: str = "public") -> set[str]:
    rows = fetch(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))
    return {name for (name,) in rows}


def test_happy_path_loads_everything_and_every_check_passes(
    sample_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    result, report = run_job(sample_db, pg_dsn, tmp_path)

    assert result.success
    assert report["status"] == "success" and report["promoted"] is True
    counts = source_counts(sample_db)
    assert {t["table"]: t["loaded_rows"] for t in report["tables"]} == counts
    for table, expected in counts.items():
        assert fetch(pg_dsn, f'SELECT count(*) FROM public."{table}"')[0][0] == expected
    checks = checks_by_table(report)
    assert all(c["passed"] for per_table in checks.values() for c in per_table.values())
    assert set(checks["user_roles"]) == {
        "row_count", "checksum", "not_null", "primary_key", "foreign_keys", "declared_types",
    }  # fmt: skip
    assert set(checks["roles"]) == {
        "row_count", "checksum", "not_null", "primary_key", "declared_types",
    }  # fmt: skip
    # Dagster saw the same check results the report shows.
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == sum(len(c) for c in checks.values())
    assert all(e.passed for e in evaluations)
    # Staging is gone after promotion; the run is in the history table.
    assert staged_tables(pg_dsn) == []
    assert fetch(pg_dsn, "SELECT status, promoted FROM consoleai_etl.runs") == [("success", True)]
    assert (tmp_path / "latest.md").read_text().startswith("# Migration report")
    # The time each table spent on its keys and on validating its foreign keys, inside its
    # load's seconds: every table has a primary key, some have foreign keys (validating
    # one of a few rows can take under the millisecond the report rounds to).
    with closing(open_source(sample_db)) as src:
        linked = {t.name for t in introspect(src).tables if t.foreign_keys}
    for t in report["tables"]:
        assert t["keys_seconds"] > 0 and t["foreign_keys_seconds"] >= 0, t
        assert t["keys_seconds"] + t["foreign_keys_seconds"] < t["seconds"], t
    assert max(t["foreign_keys_seconds"] for t in report["tables"] if t["table"] in linked) > 0


def test_target_types_constraints_and_identity(
    sample_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    run_job(sample_db, pg_dsn, tmp_path)

    types = dict(
        fetch(
            pg_dsn,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = 'users'",
        )
    )
    assert types == {
        "id": "bigint",
        "email": "character varying",
        "display_name": "text",
        "is_active": "boolean",
        "is_admin": "boolean",
        "credit_balance": "numeric",
        "settings": "jsonb",
        "avatar": "bytea",
        "created_at": "timestamp without time zone",
        "last_login_at": "timestamp without time zone",
    }
    assert fetch(
        pg_dsn,
        "SELECT data_type FROM information_schema.columns WHERE "
        "table_name = 'workflow_runs' AND column_name = 'duration_seconds'",
    ) == [("double precision",)]
    constraints = {
        (table, kind)
        for table, kind in fetch(
            pg_dsn,
            "SELECT conrelid::regclass::text, contype::text FROM pg_constraint "
            "WHERE connamespace = 'public'::regnamespace",
        )
    }
    assert {
        ("user_roles", "p"),
        ("user_roles", "f"),
        ("users", "u"),
        ("workflows", "u"),
    } <= constraints
    assert fetch(
        pg_dsn, "SELECT indexname FROM pg_indexes WHERE indexname = 'idx_audit_events_actor'"
    )
    # The identity sequence continues after the loaded ids.
    max_id = fetch(pg_dsn, "SELECT max(id) FROM users")[0][0]
    new_id = fetch(
        pg_dsn,
        "INSERT INTO users (email, display_name, created_at) "
        "VALUES ('n@x', 'N', now()) RETURNING id",
    )[0][0]
    assert new_id == max_id + 1


def test_values_survive_exactly(sample_db: Path, pg_dsn: str, tmp_path: Path) -> None:
    run_job(sample_db, pg_dsn, tmp_path)

    with sqlite3.connect(sample_db) as conn:
        source = conn.execute(
            "SELECT id, duration_seconds, cost_usd, output, started_at FROM workflow_runs "
            "WHERE duration_seconds IS NOT NULL ORDER BY id LIMIT 50"
        ).fetchall()
        user = conn.execute(
            "SELECT avatar, is_active FROM users WHERE avatar IS NOT NULL LIMIT 1"
        ).fetchone()
    target = fetch(
        pg_dsn,
        "SELECT id, duration_seconds, cost_usd, output::text, to_char(started_at, "
        "'YYYY-MM-DD HH24:MI:SS') FROM workflow_runs WHERE duration_seconds IS NOT NULL "
        "ORDER BY id LIMIT 50",
    )
    for (sid, sdur, scost, sout, sstart), (tid, tdur, tcost, tout, tstart) in zip(
        source, target, strict=True
    ):
        assert (sid, sdur, sstart) == (tid, tdur, tstart)  # doubles bit-exact, not narrowed
        assert float(tcost) == scost
        assert tout == sout
    avatar = fetch(pg_dsn, "SELECT avatar FROM users WHERE avatar = %s", (user[0],))
    assert avatar and bytes(avatar[0][0]) == user[0]


def test_divergence_in_target_fails_consistency_check_naming_the_table(
    sample_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    run_job(sample_db, pg_dsn, tmp_path / "load")
    execute(pg_dsn, "DELETE FROM audit_events WHERE id = (SELECT max(id) FROM audit_events)")

    result, report = run_job(sample_db, pg_dsn, tmp_path / "verify", job="consistency_check_job")

    assert not result.success
    assert report["status"] == "failure"
    row_count = checks_by_table(report)["audit_events"]["row_count"]
    assert not row_count["passed"]
    assert row_count["metadata"]["difference"] == 1
    assert "1 rows missing" in row_count["description"]
    assert any(r.startswith("audit_events: check row_count failed") for r in report["reasons"])
    # Every other table still passes, and nothing was loaded by the check-only job.
    failing = {
        t for t, c in checks_by_table(report).items() if not all(x["passed"] for x in c.values())
    }
    assert failing == {"audit_events"}
    failed_evaluations = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [(e.asset_key.path[-1], e.check_name) for e in failed_evaluations] == [
        ("audit_events", "row_count"),
        ("audit_events", "checksum"),
    ]
    assert not result.get_asset_materialization_events()


def test_consistency_job_passes_on_an_untouched_target(
    sample_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    run_job(sample_db, pg_dsn, tmp_path / "load")
    result, report = run_job(sample_db, pg_dsn, tmp_path / "verify", job="consistency_check_job")
    assert result.success and report["status"] == "success"
    assert report["promoted"] is False
    assert len(result.get_asset_check_evaluations()) == sum(
        len(t["checks"]) for t in report["tables"]
    )


def test_dry_run_leaves_target_untouched(sample_db: Path, pg_dsn: str, tmp_path: Path) -> None:
    result, report = run_job(sample_db, pg_dsn, tmp_path, dry_run=True)

    assert result.success
    assert report["dry_run"] is True and report["promoted"] is False
    assert report["status"] == "success"
    assert sum(t["loaded_rows"] for t in report["tables"]) == sum(source_counts(sample_db).values())
    assert target_tables(pg_dsn) == set()
    assert staged_tables(pg_dsn) == []
    assert "DRY RUN" in (tmp_path / "latest.md").read_text()


def test_rerun_is_idempotent(sample_db: Path, pg_dsn: str, tmp_path: Path) -> None:
    run_job(sample_db, pg_dsn, tmp_path / "first")
    first = {t: table_digest(pg_dsn, "public", t, KEYS[t]) for t in TABLE_ORDER}
    result, report = run_job(sample_db, pg_dsn, tmp_path / "second")
    second = {t: table_digest(pg_dsn, "public", t, KEYS[t]) for t in TABLE_ORDER}

    assert result.success and report["status"] == "success"
    assert first == second
    assert fetch(pg_dsn, "SELECT count(*) FROM consoleai_etl.runs WHERE promoted")[0][0] == 2


def make_parent_child(path: Path, child_rows: list[tuple]) -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "DROP TABLE IF EXISTS child; DROP TABLE IF EXISTS parent;"
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
            "CREATE TABLE child (code TEXT PRIMARY KEY, parent_id INTEGER REFERENCES parent(id));"
            "INSERT INTO parent VALUES (1), (2);"
        )
        conn.executemany("INSERT INTO child VALUES (?, ?)", child_rows)


def test_quarantined_orphans_block_promotion_and_keep_the_old_target(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = tmp_path / "orphans.sqlite"
    make_parent_child(db, [("a", 1), ("b", 2)])
    run_job(db, pg_dsn, tmp_path / "r1")
    make_parent_child(db, [("a", 1), ("b", 2), ("c", 99)])  # 99: an orphan in the source

    result, report = run_job(db, pg_dsn, tmp_path / "r2")

    assert not result.success and report["status"] == "failure" and not report["promoted"]
    assert fetch(pg_dsn, "SELECT code, parent_id FROM child ORDER BY code") == [("a", 1), ("b", 2)]
    assert report["reasons"] == ["1 rows quarantined: child (1)"]
    fk = checks_by_table(report)["child"]["foreign_keys"]
    assert fk["passed"]  # the orphan went to quarantine, so the staged FK is VALID
    [detail] = fk["metadata"]["foreign_keys"]
    assert detail["target_orphans"] == 0
    assert detail["source_orphans"] == 1 and detail["source_sample"] == [["99"]]
    assert fetch(
        pg_dsn,
        "SELECT source_key, column_name, reason FROM consoleai_etl.quarantine WHERE run_id = %s",
        (result.run_id,),
    ) == [
        (
            {"code": "c"},
            "parent_id",
            "orphan: no parent row with (id) = this row's (parent_id)",
        )
    ]
    # The report asset wrote its files, then failed the run (it is the only failed step).
    failure = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert [e.step_key for e in failure] == ["migration_report"]


def test_orphans_keep_creates_the_fk_not_valid_and_lists_them(tmp_path: Path, pg_dsn: str) -> None:
    db = tmp_path / "orphans.sqlite"
    make_parent_child(db, [("a", 1), ("c", 99)])

    result, report = run_job(db, pg_dsn, tmp_path, orphans="keep")

    assert result.success and report["status"] == "success" and report["promoted"]
    assert fetch(pg_dsn, "SELECT count(*) FROM child")[0][0] == 2
    convalidated = fetch(pg_dsn, "SELECT convalidated FROM pg_constraint WHERE contype = 'f'")
    assert convalidated == [(False,)]
    fk = checks_by_table(report)["child"]["foreign_keys"]
    assert fk["passed"] and "1 orphans kept" in fk["description"]
    assert fk["metadata"]["foreign_keys"][0]["target_sample"] == [["99"]]
    [warning] = next(t for t in report["tables"] if t["table"] == "child")["warnings"]
    assert "created NOT VALID: 1 orphan rows kept" in warning


def test_orphans_fail_fails_the_table(tmp_path: Path, pg_dsn: str) -> None:
    db = tmp_path / "orphans.sqlite"
    make_parent_child(db, [("a", 1), ("c", 99)])

    result, report = run_job(db, pg_dsn, tmp_path, orphans="fail")

    assert not result.success and report["status"] == "failure"
    [child] = [t for t in report["tables"] if t["table"] == "child"]
    assert "1 orphan rows" in child["error"] and "(orphans: fail)" in child["error"]
    assert not any(c["passed"] for c in child["checks"])


def test_allow_divergence_accepts_a_diverged_target(
    sample_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    run_job(sample_db, pg_dsn, tmp_path / "load")
    execute(pg_dsn, "DELETE FROM audit_events WHERE id = 8")

    result, report = run_job(
        sample_db, pg_dsn, tmp_path / "verify", job="consistency_check_job", allow_divergence=True
    )

    assert result.success
    assert report["status"] == "success_with_divergence"
    assert not checks_by_table(report)["audit_events"]["row_count"]["passed"]


def test_null_in_not_null_column_is_quarantined_not_dropped(tmp_path: Path, pg_dsn: str) -> None:
    db = tmp_path / "nullkey.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (code TEXT PRIMARY KEY, n INTEGER)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [("a", 1), (None, 2)])

    result, report = run_job(db, pg_dsn, tmp_path)
    assert not result.success and report["status"] == "failure"
    assert "1 rows quarantined: items (1)" in report["reasons"]
    assert checks_by_table(report)["items"]["row_count"]["passed"]  # 2 = 1 loaded + 1 quarantined
    quarantined = fetch(
        pg_dsn,
        "SELECT source_table, source_key, column_name, reason, row_data "
        "FROM consoleai_etl.quarantine WHERE run_id = %s",
        (result.run_id,),
    )
    assert quarantined == [
        ("items", {"code": None}, "code", "NULL in a NOT NULL column", {"code": None, "n": 2})
    ]

    result, report = run_job(db, pg_dsn, tmp_path, allow_divergence=True)
    assert result.success and report["status"] == "success_with_quarantine"
    assert fetch(pg_dsn, "SELECT code, n FROM items") == [("a", 1)]

    # Re-verified later, the promoted run's quarantine still accounts for the missing row.
    verified, report = run_job(
        db, pg_dsn, tmp_path / "verify", job="consistency_check_job", allow_divergence=True
    )
    [items] = report["tables"]
    assert verified.success and items["quarantined_rows"] == 1
    assert items["quarantine_reasons"] == [
        {"column": "code", "reason": "NULL in a NOT NULL column", "rows": 1}
    ]
    assert checks_by_table(report)["items"]["row_count"]["passed"]


@pytest.mark.parametrize("schema", ["legacy", "Mixed Case"])
def test_target_schema_setting(sample_db: Path, pg_dsn: str, tmp_path: Path, schema: str) -> None:
    result, _ = run_job(sample_db, pg_dsn, tmp_path, target_schema=schema)
    assert result.success
    assert target_tables(pg_dsn, schema) == set(TABLE_ORDER)
    assert target_tables(pg_dsn) == set()


def test_promotion_blocked_by_a_foreign_object_fails_clearly_and_keeps_the_target(
    sample_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    run_job(sample_db, pg_dsn, tmp_path / "first")
    execute(pg_dsn, "CREATE VIEW public.someone_elses AS SELECT id FROM public.roles")
    before = table_digest(pg_dsn, "public", "roles", "id")

    result, report = run_job(sample_db, pg_dsn, tmp_path / "second")

    assert not result.success and report["status"] == "failure" and not report["promoted"]
    [reason] = report["reasons"]
    assert reason.startswith("promotion failed, target unchanged: cannot replace tables")
    assert "someone_elses" in reason
    assert table_digest(pg_dsn, "public", "roles", "id") == before

"""Merge mode: the application's own writes win (issue 20, point 6). Each merge records, per
key, the hash of the row it took from the source; a re-merge then tells which side changed
a row that differs: the source alone (updated), the application alone (kept, counted as
``kept_application_changes``) or both (a conflict, settled by ``on_conflict``). Real
PostgreSQL, real SQLite files, real Dagster runs and the real command."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from consoleai_etl.core.errors import MigrationError
from consoleai_etl.core.plan.merge_plan import MergeOptions
from consoleai_etl_tests.helpers import checks_by_table, execute, fetch, run_job
from consoleai_etl_tests.test_console_script import (
    consoleai_etl,
    plain_env,
    summary_row,
    the_report,
)
from consoleai_etl_tests.test_merge_mode import (
    application,
    counts,
    dump,
    legacy_db,
    merge_counts,
    plain,
)

RECORDS = (
    "SELECT t.target_schema, t.target_table, r.row_key, r.row_hash, t.run_id, r.xmin::text "
    "FROM consoleai_etl.merged_rows r JOIN consoleai_etl.merged_tables t ON t.id = r.table_id "
    "ORDER BY 1, 2, 3"
)
RECORDED_AS_DOCUMENTED = (
    "SELECT t.target_schema, t.target_table, x.id, r.row_hash = x.hash "
    "FROM consoleai_etl.merged_rows r JOIN consoleai_etl.merged_tables t ON t.id = r.table_id "
    "JOIN (SELECT 'orders' AS name, id, record_send(ROW(id)) AS key, "
    "hash_record_extended(ROW(id, user_id, total, note), 0) AS hash FROM orders "
    "UNION ALL SELECT 'users', id, record_send(ROW(id)), "
    "hash_record_extended(ROW(id, email, name), 0) FROM users) x "
    "ON x.name = t.target_table AND x.key = r.row_key ORDER BY 1, 2, 3"
)
CHANGES = (
    "SELECT target_table, key, conflict, kept FROM consoleai_etl.application_changes "
    "WHERE run_id = %s ORDER BY 1, 2"
)
ROWS = (
    "SELECT 'users', id, xmin::text, xmax::text FROM users UNION ALL "
    "SELECT 'orders', id, xmin::text, xmax::text FROM orders ORDER BY 1, 2"
)


def names(dsn: str) -> dict[int, str | None]:
    return dict(fetch(dsn, "SELECT id, name FROM users WHERE id < 1000 ORDER BY id"))


def merged_then_changed_on_both_sides(tmp_path: Path, pg_dsn: str) -> Path:
    """The legacy file merged once into the application's schema; then the application
    updates user 1 (A), the source changes user 2 (B), and both change user 3 (C)."""
    source = legacy_db(tmp_path)
    application(pg_dsn)
    merge_once(source, pg_dsn, tmp_path)
    change_both_sides(source, pg_dsn)
    return source


def merge_once(source: Path, pg_dsn: str, tmp_path: Path) -> None:
    """A first merge, and what it records: every row's key and hash, under its run."""
    result, report = run_job(source, pg_dsn, tmp_path / "r", mode="merge")
    assert result.success and report["status"] == "success", report["reasons"]
    # Every merged row is recorded by its key, with the hash of the row as merged: both
    # computed the documented way, here from the target's rows, which equal the source's.
    assert fetch(pg_dsn, RECORDED_AS_DOCUMENTED) == [
        ("public", "orders", 10, True),
        ("public", "orders", 11, True),
        ("public", "orders", 12, True),
        ("public", "users", 1, True),
        ("public", "users", 2, True),
        ("public", "users", 3, True),
    ]
    assert fetch(pg_dsn, "SELECT count(*) FROM consoleai_etl.merged_rows") == [(6,)]
    assert {run for *_, run, _xmin in fetch(pg_dsn, RECORDS)} == {result.run_id}


def change_both_sides(source: Path, pg_dsn: str) -> None:
    execute(pg_dsn, "UPDATE users SET name = 'Ada (app)' WHERE id = 1")
    execute(pg_dsn, "UPDATE users SET name = 'Cy (app)' WHERE id = 3")
    with sqlite3.connect(source) as conn:
        conn.execute("UPDATE users SET name = 'Robert' WHERE id = 2")
        conn.execute("UPDATE users SET name = 'Cyrus' WHERE id = 3")
    conn.close()


def test_the_application_keeps_its_changes_and_conflicts_are_kept_and_reported(
    tmp_path: Path, pg_dsn: str
) -> None:
    source = merged_then_changed_on_both_sides(tmp_path, pg_dsn)

    result, report = run_job(source, pg_dsn, tmp_path / "r", mode="merge")

    assert result.success and report["status"] == "success_with_warnings"
    assert names(pg_dsn) == {1: "Ada (app)", 2: "Robert", 3: "Cy (app)"}
    assert plain(merge_counts(report)["users"]) == {
        **counts(0, 1, 0, 1, kept=1, conflicts=1),
        "conflict_keys": [{"id": 3}],
        "on_conflict": "target",
    }
    assert plain(merge_counts(report)["orders"]) == counts(0, 0, 3, 0)
    assert report["reasons"] == [
        "users: 1 rows changed both in the source and by the application since the last "
        'merge, the application\'s rows kept (on_conflict: target): keys {"id": 3}'
    ]
    proof = checks_by_table(report)["users"]["checksum"]
    assert proof["passed"]
    assert proof["description"].endswith(
        "; merged: every one of them is in public.users with equal values, except 2 kept as "
        "the application wrote them: 1 the application changed since the last merge; 1 both "
        "sides changed (conflicts, on_conflict: target)"
    )
    assert (proof["metadata"]["kept_application_changes"], proof["metadata"]["conflicts"]) == (1, 1)
    # Every row the application changed is listed with its key, as the quarantine lists rows.
    assert fetch(pg_dsn, CHANGES, (result.run_id,)) == [
        ("users", {"id": 1}, False, True),
        ("users", {"id": 3}, True, True),
    ]
    markdown = (tmp_path / "r" / f"migration-report-{result.run_id}.md").read_text()
    assert "| kept application changes | conflicts |" in markdown
    assert "| users | 0 | 1 | 0 | 1 | 1 | 1 | — |" in markdown
    assert (
        "- every row the application changed since the last merge, with its key: "
        f"`consoleai_etl.application_changes`, run_id `{result.run_id}`" in markdown
    )
    html = (tmp_path / "r" / f"migration-report-{result.run_id}.html").read_text()
    assert '<th class="num">kept application changes</th><th class="num">conflicts</th>' in html
    assert "keys {&quot;id&quot;: 3}" in html

    # The conflict was settled: the source's row is now the one recorded, so the same
    # merge again finds only rows the application changed, and writes nothing at all.
    rows, records = fetch(pg_dsn, ROWS), fetch(pg_dsn, RECORDS)
    result, report = run_job(source, pg_dsn, tmp_path / "r", mode="merge")
    assert result.success and report["status"] == "success", report["reasons"]
    assert plain(merge_counts(report)["users"]) == counts(0, 0, 1, 1, kept=2)
    markdown = (tmp_path / "r" / f"migration-report-{result.run_id}.md").read_text()
    assert (
        "- nothing written: the target holds every source row, but for rows the application "
        "changed since the last merge, kept" in markdown
    )
    assert fetch(pg_dsn, ROWS) == rows  # no row of the target written or locked
    assert fetch(pg_dsn, RECORDS) == records  # nor of the record
    assert names(pg_dsn) == {1: "Ada (app)", 2: "Robert", 3: "Cy (app)"}
    # Re-verifying agrees: the rows the application changed are kept, not missing.
    verified, report = run_job(
        source, pg_dsn, tmp_path / "r", job="consistency_check_job", mode="merge"
    )
    assert verified.success and report["status"] == "success", report["reasons"]
    assert checks_by_table(report)["users"]["checksum"]["metadata"] == {
        "not_in_target": 0,
        "kept_application_changes": 2,
        "extra_in_target": 1,
    }


def test_on_conflict_source_writes_the_sources_row_over_a_conflict(
    tmp_path: Path, pg_dsn: str
) -> None:
    source = merged_then_changed_on_both_sides(tmp_path, pg_dsn)

    result, report = run_job(source, pg_dsn, tmp_path / "r", mode="merge", on_conflict="source")

    assert result.success and report["status"] == "success_with_warnings"
    assert names(pg_dsn) == {1: "Ada (app)", 2: "Robert", 3: "Cyrus"}  # A still kept
    assert plain(merge_counts(report)["users"]) == {
        **counts(0, 2, 0, 1, kept=1, conflicts=1),
        "conflict_keys": [{"id": 3}],
        "on_conflict": "source",
    }
    assert report["reasons"] == [
        "users: 1 rows changed both in the source and by the application since the last "
        "merge, the source's rows written over the application's (on_conflict: source): "
        'keys {"id": 3}'
    ]
    assert checks_by_table(report)["users"]["checksum"]["description"].endswith(
        "except 1 kept as the application wrote them: 1 the application changed since the "
        "last merge"
    )
    assert fetch(pg_dsn, CHANGES, (result.run_id,)) == [
        ("users", {"id": 1}, False, True),
        ("users", {"id": 3}, True, False),  # the conflict: the source's row written
    ]


def test_on_conflict_fail_stops_the_merge_naming_the_keys_and_changes_nothing(
    tmp_path: Path, pg_dsn: str
) -> None:
    source = merged_then_changed_on_both_sides(tmp_path, pg_dsn)
    before, records = dump(pg_dsn), fetch(pg_dsn, RECORDS)

    result, report = run_job(source, pg_dsn, tmp_path / "r", mode="merge", on_conflict="fail")

    assert not result.success and report["status"] == "failure" and not report["promoted"]
    [reason] = [r for r in report["reasons"] if r.startswith("merge failed")]
    assert reason == (
        "merge failed, target unchanged: merge of table users into public.users stopped: 1 "
        "rows were changed both in the source and by the application since the last merge "
        '(keys {"id": 3}) and on_conflict is fail: set on_conflict to target (keep the '
        "application's rows) or source (write the source's)"
    )
    assert dump(pg_dsn) == before  # B not updated either: one transaction
    assert fetch(pg_dsn, RECORDS) == records
    assert fetch(pg_dsn, CHANGES, (result.run_id,)) == []


def test_a_dry_run_records_nothing(tmp_path: Path, pg_dsn: str) -> None:
    source = legacy_db(tmp_path)
    application(pg_dsn)
    result, report = run_job(source, pg_dsn, tmp_path / "r", mode="merge", dry_run=True)
    assert result.success and report["dry_run"], report["reasons"]
    assert plain(merge_counts(report)["users"]) == counts(3, 0, 0, 1)
    assert fetch(pg_dsn, "SELECT count(*) FROM consoleai_etl.merged_tables") == [(0,)]
    assert fetch(pg_dsn, "SELECT count(*) FROM consoleai_etl.merged_rows") == [(0,)]

    # A dry run of a re-merge reports what the real one would keep, and records nothing.
    merge_once(source, pg_dsn, tmp_path)
    change_both_sides(source, pg_dsn)
    before, records = dump(pg_dsn), fetch(pg_dsn, RECORDS)
    result, report = run_job(source, pg_dsn, tmp_path / "r", mode="merge", dry_run=True)
    assert result.success and report["status"] == "success_with_warnings"
    assert plain(merge_counts(report)["users"]) == {
        **counts(0, 1, 0, 1, kept=1, conflicts=1),
        "conflict_keys": [{"id": 3}],
        "on_conflict": "target",
    }
    assert (dump(pg_dsn), fetch(pg_dsn, RECORDS)) == (before, records)
    assert fetch(pg_dsn, CHANGES, (result.run_id,)) == []


def test_the_old_on_conflict_values_are_refused_naming_the_new_ones(
    tmp_path: Path, pg_dsn: str
) -> None:
    source = legacy_db(tmp_path)
    application(pg_dsn)
    before = dump(pg_dsn)
    env = {**plain_env(), "CONSOLEAI_ON_CONFLICT": "update"}
    done = consoleai_etl(tmp_path, "migrate", str(source), pg_dsn, "--mode", "merge", env=env)
    assert done.returncode == 2
    assert done.stderr.strip().endswith(
        "CONSOLEAI_ON_CONFLICT: Input should be 'target', 'source' or 'fail' (got 'update'): "
        "correct or unset it"
    )
    assert dump(pg_dsn) == before


def test_the_command_prints_the_kept_and_conflicting_rows(tmp_path: Path, pg_dsn: str) -> None:
    source = merged_then_changed_on_both_sides(tmp_path, pg_dsn)

    done = consoleai_etl(tmp_path, "migrate", str(source), pg_dsn, "--mode", "merge")

    assert done.returncode == 0, done.stderr[-3000:]
    _, report = the_report(tmp_path / "reports")
    assert report["status"] == "success_with_warnings"
    header = next(line for line in done.stdout.splitlines() if "source rows" in line)
    assert "extra in target   kept application changes   conflicts" in header
    assert summary_row(done.stdout, "users")[4:10] == ["0", "1", "0", "1", "1", "1"]
    assert "migration success_with_warnings\n" in done.stdout
    assert (
        "  - users: 1 rows changed both in the source and by the application since the last "
        'merge, the application\'s rows kept (on_conflict: target): keys {"id": 3}\n' in done.stdout
    )


@pytest.mark.parametrize("old", ["update", "skip"])
def test_the_core_refuses_the_old_on_conflict_values_naming_the_new_ones(old: str) -> None:
    with pytest.raises(MigrationError) as refused:
        MergeOptions(on_conflict=old)  # type: ignore[arg-type]
    assert str(refused.value) == (
        f"unknown on_conflict {old!r}: use target (keep the application's changed rows, the "
        "default), source (write the source's) or fail"
    )

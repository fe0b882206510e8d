"""Merge mode into tables the application seeded at install: the legacy file's lookup rows
are the application's under other ids. ``merge_keys`` matches them on the natural key, the
source's ids become the application's, and every staged reference to them is rewritten, so
children point at the application's rows (real SQLite files, real PostgreSQL, the
installed command and Dagster runs)."""

from __future__ import annotations

from pathlib import Path

from consoleai_etl_tests.helpers import (
    checks_by_table,
    execute,
    fetch,
    preflight_error,
    run_job,
    run_raw,
)
from consoleai_etl_tests.test_config_file import run_config, write
from consoleai_etl_tests.test_console_script import consoleai_etl, the_report
from consoleai_etl_tests.test_merge_mode import application, dump, legacy_db, merge_counts

# roles: the legacy ids 1..4. The application seeded admin, editor, viewer with other ids;
# its id 3 is viewer while the legacy 3 is 'auditor', which the application lacks (an id
# collision: auditor needs a new id); legacy 4 'guest' is new and its id is free.
# Legacy users reference roles without a declared foreign key (the application declares
# it); grants (a grandchild) hold a role through a declared key and a user.
LEGACY = """
CREATE TABLE roles (id INTEGER PRIMARY KEY, name TEXT NOT NULL, label TEXT);
INSERT INTO roles VALUES (1, 'admin', 'Admin'), (2, 'viewer', 'Viewer'),
                         (3, 'auditor', 'Auditor'), (4, 'guest', 'Guest');
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, role_id INTEGER);
INSERT INTO users VALUES (10, 'ada@x', 1), (11, 'bob@x', 2), (12, 'cy@x', 3), (13, 'dee@x', 4),
                         (14, 'eve@x', NULL);
CREATE TABLE grants (id INTEGER PRIMARY KEY,
                     user_id INTEGER NOT NULL REFERENCES users(id),
                     role_id INTEGER NOT NULL REFERENCES roles(id),
                     granted_by INTEGER REFERENCES roles(id));
INSERT INTO grants VALUES (100, 10, 2, 1), (101, 12, 3, NULL), (102, 13, 4, 3), (103, 11, 1, 1);
"""

APPLICATION = """
CREATE TABLE public.roles (id serial PRIMARY KEY, name text NOT NULL UNIQUE, label text);
INSERT INTO public.roles (id, name, label) VALUES (1, 'editor', 'Editor'),
    (2, 'admin', 'Admin'), (3, 'viewer', 'Viewer');
CREATE TABLE public.users (id integer PRIMARY KEY, email text NOT NULL,
                           role_id integer REFERENCES public.roles(id));
CREATE TABLE public.grants (id integer PRIMARY KEY,
                            user_id integer NOT NULL REFERENCES public.users(id),
                            role_id integer NOT NULL REFERENCES public.roles(id),
                            granted_by integer REFERENCES public.roles(id));
"""

SEEDED = {"merge_keys": {"roles": ["name"]}}

# Each source reference as the natural key it means, and the same read from the target.
LEGACY_MEANING = [
    ("ada@x", "admin"), ("bob@x", "viewer"), ("cy@x", "auditor"), ("dee@x", "guest"),
    ("eve@x", None),
]  # fmt: skip
USERS_BY_ROLE_NAME = (
    "SELECT u.email, r.name FROM users u LEFT JOIN roles r ON r.id = u.role_id ORDER BY u.email"
)
GRANTS_BY_ROLE_NAME = (
    "SELECT g.id, u.email, r.name, b.name FROM grants g JOIN users u ON u.id = g.user_id "
    "JOIN roles r ON r.id = g.role_id LEFT JOIN roles b ON b.id = g.granted_by ORDER BY g.id"
)


def seeded_setup(tmp_path: Path, pg_dsn: str) -> Path:
    application(pg_dsn, APPLICATION)
    return legacy_db(tmp_path, LEGACY)


def test_children_point_at_the_applications_rows_and_a_second_merge_writes_nothing(
    tmp_path: Path, pg_dsn: str
) -> None:
    source = seeded_setup(tmp_path, pg_dsn)
    result, report = run_job(source, pg_dsn, tmp_path / "r", mode="merge", **SEEDED)
    assert result.success and report["status"] == "success", report["reasons"]

    # Matched rows keep the application's ids; guest keeps its free id 4; auditor's id 3
    # is the application's viewer, so it gets a new one after the largest id in use.
    assert fetch(pg_dsn, "SELECT id, name FROM roles ORDER BY id") == [
        (1, "editor"), (2, "admin"), (3, "viewer"), (4, "guest"), (5, "auditor"),
    ]  # fmt: skip
    assert fetch(pg_dsn, USERS_BY_ROLE_NAME) == LEGACY_MEANING
    assert fetch(pg_dsn, GRANTS_BY_ROLE_NAME) == [
        (100, "ada@x", "viewer", "admin"),
        (101, "cy@x", "auditor", None),
        (102, "dee@x", "guest", "auditor"),
        (103, "bob@x", "admin", "admin"),
    ]
    merged = merge_counts(report)
    # source ids 1->2, 2->3, 3->5 change; 4 stays: users 3 rows, grants 3 + 3 values
    assert merged["roles"]["seeded"] == {
        "key": ["name"],
        "matched": 2,
        "inserted": 2,
        "new_ids": 1,
        "references_rewritten": 9,
        "rewritten_columns": {"users.role_id": 3, "grants.role_id": 3, "grants.granted_by": 3},
    }
    assert merged["roles"]["inserted"] == 2 and merged["roles"]["updated"] == 0
    assert merged["roles"]["extra_in_target"] == 1  # the application's editor
    assert "seeded" not in merged["users"]
    markdown = (tmp_path / "r" / f"migration-report-{result.run_id}.md").read_text()
    assert (
        "| roles | name | 2 | 2 | 1 | 9 | users.role_id 3, grants.role_id 3, grants.granted_by 3 |"
        in markdown
    )
    # The serial sequence is past the new id: the application's next role does not collide.
    execute(pg_dsn, "INSERT INTO roles (name) VALUES ('next')")
    assert fetch(pg_dsn, "SELECT id FROM roles WHERE name = 'next'") == [(6,)]

    before = dump(pg_dsn)
    again, report = run_job(source, pg_dsn, tmp_path / "r", mode="merge", **SEEDED)
    assert again.success and report["status"] == "success", report["reasons"]
    assert dump(pg_dsn) == before
    merged = merge_counts(report)
    assert {t: (m["inserted"], m["updated"]) for t, m in merged.items()} == {
        "roles": (0, 0), "users": (0, 0), "grants": (0, 0),
    }  # fmt: skip
    assert merged["roles"]["seeded"]["matched"] == 4

    verified, report = run_job(
        source, pg_dsn, tmp_path / "r", job="consistency_check_job", mode="merge", **SEEDED
    )
    assert verified.success and report["status"] == "success", report["reasons"]
    checks = checks_by_table(report)
    assert all(checks[t]["checksum"]["passed"] for t in ("roles", "users", "grants"))
    assert checks["grants"]["foreign_keys"]["passed"]

    # The application points a legacy user at another role: verify names it.
    execute(pg_dsn, "UPDATE users SET role_id = 1 WHERE email = 'ada@x'")
    _, report = run_job(
        source, pg_dsn, tmp_path / "r", job="consistency_check_job", mode="merge", **SEEDED
    )
    proof = checks_by_table(report)["users"]["checksum"]
    assert proof["metadata"]["kept_application_changes"] == 1  # its own change, kept


def test_dry_run_leaves_the_target_identical(tmp_path: Path, pg_dsn: str) -> None:
    source = seeded_setup(tmp_path, pg_dsn)
    before = dump(pg_dsn)
    result, report = run_job(source, pg_dsn, tmp_path / "r", mode="merge", dry_run=True, **SEEDED)
    assert result.success, report["reasons"]
    assert merge_counts(report)["roles"]["seeded"]["new_ids"] == 1
    assert dump(pg_dsn) == before


def test_a_natural_key_matching_two_target_rows_is_refused_naming_both(
    tmp_path: Path, pg_dsn: str
) -> None:
    """Without a UNIQUE on the natural key the application may hold it twice: which row the
    legacy row means cannot be told."""
    source = legacy_db(tmp_path, LEGACY)
    application(pg_dsn, APPLICATION.replace("name text NOT NULL UNIQUE", "name text NOT NULL"))
    execute(pg_dsn, "INSERT INTO roles (id, name) VALUES (7, 'viewer')")
    before = dump(pg_dsn)
    result, report = run_job(source, pg_dsn, tmp_path / "r", mode="merge", **SEEDED)
    assert not result.success and report["status"] == "failure"
    assert dump(pg_dsn) == before
    assert any(
        "roles -> public.roles: the natural key (name) = (viewer) matches two target rows, "
        "id 3 and 7" in reason
        for reason in report["reasons"]
    ), report["reasons"]


def test_two_source_rows_with_one_natural_key_are_refused_naming_both(
    tmp_path: Path, pg_dsn: str
) -> None:
    source = legacy_db(tmp_path, LEGACY + "INSERT INTO roles VALUES (9, 'admin', 'Again');")
    application(pg_dsn, APPLICATION)
    before = dump(pg_dsn)
    result, report = run_job(source, pg_dsn, tmp_path / "r", mode="merge", **SEEDED)
    assert not result.success
    assert dump(pg_dsn) == before
    assert any(
        "source rows id 1 and 9 have the same natural key (name) = (admin)" in reason
        for reason in report["reasons"]
    ), report["reasons"]


def test_a_seeded_table_also_skipped_is_refused(tmp_path: Path, pg_dsn: str) -> None:
    """Skipped, its ids in users and grants would go in untranslated: pointing at other
    roles of the application."""
    source = seeded_setup(tmp_path, pg_dsn)
    before = dump(pg_dsn)
    result = run_raw(source, pg_dsn, tmp_path / "r", mode="merge", skip_tables=["roles"], **SEEDED)
    assert not result.success
    assert dump(pg_dsn) == before
    assert "merge_keys names roles, which the run skips" in preflight_error(result)


def test_through_the_command_with_a_config_file(tmp_path: Path, pg_dsn: str) -> None:
    source = seeded_setup(tmp_path, pg_dsn)
    config = write(tmp_path / "run.yaml", run_config({"mode": "merge", **SEEDED}))
    done = consoleai_etl(
        tmp_path, "migrate", str(source), pg_dsn, "--config", str(config),
        "--report-dir", "reports",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    _, report = the_report(tmp_path / "reports")
    assert merge_counts(report)["roles"]["seeded"]["references_rewritten"] == 9
    assert fetch(pg_dsn, USERS_BY_ROLE_NAME) == LEGACY_MEANING
    done = consoleai_etl(
        tmp_path, "verify", str(source), pg_dsn, "--config", str(config),
        "--report-dir", "reports",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

"""Merge mode with foreign-key cycles (real SQLite files, real PostgreSQL): two tables that
reference each other and a self-reference, merged into an application schema with the same
keys, deferrable (as Django creates them) or not. A parent row counts when it is staged or
already in the application's table; the cycle's keys are checked once both tables are
staged; a real orphan is quarantined with the rows depending on it, or, under ``orphans:
keep``, reported exactly; the write order follows the application's keys."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from consoleai_etl_tests.helpers import (
    checks_by_table,
    execute,
    fetch,
    preflight_error,
    run_job,
    run_raw,
)
from consoleai_etl_tests.test_console_script import consoleai_etl, the_report

# departments.manager_id -> employees and employees.department_id -> departments close a
# cycle; employees.mentor_id references employees. The application already has department
# 900 and employees 500 and 501, which legacy rows point at.
LEGACY = """
CREATE TABLE departments (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                          manager_id INTEGER REFERENCES employees(id));
CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                        department_id INTEGER REFERENCES departments(id),
                        mentor_id INTEGER REFERENCES employees(id));
INSERT INTO departments VALUES (1, 'Research', 10), (2, 'Sales', 500);
INSERT INTO employees VALUES (10, 'Ada', 1, NULL), (11, 'Bob', 900, 10), (12, 'Cy', 1, 501),
                             (13, 'Dee', 2, 12);
"""

# A real orphan: department 3's manager 777 is nowhere. Employee 14 works in department 3,
# employee 15 is mentored by 14: quarantining department 3 makes both orphans in turn.
REAL_ORPHAN = """
INSERT INTO departments VALUES (3, 'Ghost', 777);
INSERT INTO employees VALUES (14, 'Eve', 3, NULL), (15, 'Fay', 1, 14);
"""

DEFERRED = "DEFERRABLE INITIALLY DEFERRED"  # as Django creates its foreign keys

# Each variant: (departments.manager_id, employees.department_id, employees.mentor_id).
KEYS = {
    "deferrable": (DEFERRED, DEFERRED, DEFERRED),
    # Only the department key can wait (and waits only when the merge defers it), so the
    # application's keys order employees before departments: the source's order is the
    # other way round.
    "one deferrable": ("", "DEFERRABLE INITIALLY IMMEDIATE", ""),
}


def application(manager: str, department: str, mentor: str) -> str:
    return f"""
CREATE TABLE public.departments (id integer PRIMARY KEY, name text NOT NULL,
                                 manager_id integer);
CREATE TABLE public.employees (
    id integer PRIMARY KEY, name text NOT NULL,
    department_id integer CONSTRAINT employees_department_fk
        REFERENCES public.departments(id) {department},
    mentor_id integer CONSTRAINT employees_mentor_fk REFERENCES public.employees(id) {mentor});
ALTER TABLE public.departments ADD CONSTRAINT departments_manager_fk
    FOREIGN KEY (manager_id) REFERENCES public.employees(id) {manager};
INSERT INTO public.departments VALUES (900, 'App department', NULL);
INSERT INTO public.employees VALUES (500, 'App boss', 900, NULL), (501, 'App mentor', 900, 500);
"""


def legacy_db(tmp_path: Path, *scripts: str) -> Path:
    path = tmp_path / "legacy.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript("".join(scripts))
    conn.close()
    return path


def by_table(report: dict, field: str) -> dict[str, object]:
    return {t["table"]: t[field] for t in report["tables"]}


def written(report: dict) -> dict[str, tuple[int, int]]:
    return {t["table"]: (t["merge"]["inserted"], t["merge"]["updated"]) for t in report["tables"]}


EMPLOYEES = "SELECT id, department_id, mentor_id FROM employees ORDER BY id"
DEPARTMENTS = "SELECT id, manager_id FROM departments ORDER BY id"


@pytest.mark.parametrize("keys", sorted(KEYS))
def test_cycle_merges_with_parents_in_staging_or_the_application(
    tmp_path: Path, pg_dsn: str, keys: str
) -> None:
    execute(pg_dsn, application(*KEYS[keys]))
    source = legacy_db(tmp_path, LEGACY, REAL_ORPHAN)
    merge = {"mode": "merge", "allow_divergence": True}  # the quarantined rows are expected
    result, report = run_job(source, pg_dsn, tmp_path / "r", **merge)
    assert result.success, report["reasons"]
    assert report["promoted"]
    # Exactly the real orphan and the two rows depending on it are quarantined: no row
    # pointing at an application row or at a row of the other table of the cycle.
    assert by_table(report, "quarantined_rows") == {"departments": 1, "employees": 2}
    quarantined = fetch(
        pg_dsn,
        "SELECT source_table, source_key->>'id', column_name FROM consoleai_etl.quarantine "
        "ORDER BY 1, 2",
    )
    assert quarantined == [
        ("departments", "3", "manager_id"),
        ("employees", "14", "department_id"),
        ("employees", "15", "mentor_id"),
    ]
    assert all(c["passed"] for t in report["tables"] for c in t["checks"]), report["reasons"]
    assert fetch(pg_dsn, DEPARTMENTS) == [(1, 10), (2, 500), (900, None)]
    assert fetch(pg_dsn, EMPLOYEES) == [
        (10, 1, None),
        (11, 900, 10),
        (12, 1, 501),
        (13, 2, 12),
        (500, 900, None),
        (501, 900, 500),
    ]
    assert written(report) == {"departments": (2, 0), "employees": (4, 0)}

    # A second merge writes nothing; re-verifying finds every key held in the target.
    result, report = run_job(source, pg_dsn, tmp_path / "r", **merge)
    assert result.success, report["reasons"]
    assert written(report) == {"departments": (0, 0), "employees": (0, 0)}
    result, report = run_job(source, pg_dsn, tmp_path / "r", job="consistency_check_job", **merge)
    checks = checks_by_table(report)
    assert result.success, report["reasons"]
    assert checks["employees"]["foreign_keys"]["passed"]
    assert checks["departments"]["foreign_keys"]["passed"]


def test_orphans_keep_reports_exactly_the_real_orphans(tmp_path: Path, pg_dsn: str) -> None:
    execute(pg_dsn, application(*KEYS["deferrable"]))
    before = fetch(pg_dsn, EMPLOYEES), fetch(pg_dsn, DEPARTMENTS)
    source = legacy_db(tmp_path, LEGACY, REAL_ORPHAN)
    result, report = run_job(source, pg_dsn, tmp_path / "r", mode="merge", orphans="keep")
    checks = checks_by_table(report)
    # Only department 3's manager is missing: employees 14 and 15 have their parents.
    assert checks["departments"]["foreign_keys"]["description"] == (
        "1 foreign keys, 1 orphans kept (orphans: keep)"
    )
    assert checks["employees"]["foreign_keys"]["description"] == "2 foreign keys without orphans"
    assert by_table(report, "quarantined_rows") == {"departments": 0, "employees": 0}
    # The application's key refuses the orphan: the merge rolls back, naming it.
    assert not result.success
    assert "departments_manager_fk" in " ".join(report["reasons"])
    assert (fetch(pg_dsn, EMPLOYEES), fetch(pg_dsn, DEPARTMENTS)) == before


def test_a_cycle_of_keys_that_cannot_wait_is_refused_before_anything_is_written(
    tmp_path: Path, pg_dsn: str
) -> None:
    execute(pg_dsn, application("", "", ""))
    source = legacy_db(tmp_path, LEGACY)
    result = run_raw(source, pg_dsn, tmp_path / "r", mode="merge")
    error = preflight_error(result)
    assert "departments_manager_fk" in error and "employees_department_fk" in error
    assert "DEFERRABLE" in error
    assert fetch(pg_dsn, "SELECT count(*) FROM employees") == [(2,)]


def test_cycle_merge_through_the_command(tmp_path: Path, pg_dsn: str) -> None:
    execute(pg_dsn, application(*KEYS["deferrable"]))
    source = legacy_db(tmp_path, LEGACY)
    done = consoleai_etl(
        tmp_path, "migrate", str(source), pg_dsn, "--mode", "merge", "--report-dir", "r"
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    report = the_report(tmp_path / "r")[1]
    assert written(report) == {"departments": (2, 0), "employees": (4, 0)}
    assert by_table(report, "quarantined_rows") == {"departments": 0, "employees": 0}
    done = consoleai_etl(
        tmp_path, "verify", str(source), pg_dsn, "--mode", "merge", "--report-dir", "v"
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])


def test_orphans_fail_names_the_cycle_key_and_writes_nothing(tmp_path: Path, pg_dsn: str) -> None:
    execute(pg_dsn, application(*KEYS["deferrable"]))
    before = fetch(pg_dsn, EMPLOYEES), fetch(pg_dsn, DEPARTMENTS)
    source = legacy_db(tmp_path, LEGACY, REAL_ORPHAN)
    result, report = run_job(source, pg_dsn, tmp_path / "r", mode="merge", orphans="fail")
    assert not result.success and not report["promoted"]
    errors = {t["table"]: t["error"] for t in report["tables"]}
    assert (
        "foreign key departments(manager_id) -> employees: 1 orphan rows" in errors["departments"]
    )
    assert errors["employees"] == errors["departments"]
    assert (fetch(pg_dsn, EMPLOYEES), fetch(pg_dsn, DEPARTMENTS)) == before

"""Issue 20's whole scenario, through ``consoleai-etl`` alone and one config file: a
framework application's SQLite file (years of use) merged into the PostgreSQL schema the
framework's migrations created (every type of ``test_application_types``, a partitioned
table, a table with triggers, one with row-level security, the framework's migration
history, a lookup table it seeded with ids of its own, two tables that reference each other),
with a removed feature's table in the source. Nothing edited by hand: every source value
in, the lookup table's children pointing at the application's rows, a second merge writes
nothing, and after the application updates a row a third merge keeps the application's
value and says so."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import yaml

from consoleai_etl_tests.helpers import execute, fetch
from consoleai_etl_tests.test_application_types import (
    APPLICATION,
    PARTITIONED_AND_TRIGGERED,
    assert_every_value_held,
    legacy_file,
)
from consoleai_etl_tests.test_console_script import consoleai_etl, summary_row, the_report

MORE_APPLICATION = """
CREATE TABLE django_migrations (id serial PRIMARY KEY, app text, name text, applied timestamptz);
INSERT INTO django_migrations (app, name, applied) VALUES ('accounts', '0001_initial', now());
CREATE TABLE notes (id integer PRIMARY KEY, author text, body text);
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY mine ON notes USING (author = current_user);
CREATE TABLE statuses (id serial PRIMARY KEY, code text NOT NULL UNIQUE);
INSERT INTO statuses (code) VALUES ('open'), ('closed');
CREATE TABLE tickets (id integer PRIMARY KEY, status_id integer NOT NULL
    REFERENCES statuses (id) DEFERRABLE INITIALLY DEFERRED, title text);
CREATE TABLE teams (id integer PRIMARY KEY, name text, lead_id integer);
CREATE TABLE members (id integer PRIMARY KEY, name text,
    team_id integer REFERENCES teams (id) DEFERRABLE INITIALLY DEFERRED);
ALTER TABLE teams ADD FOREIGN KEY (lead_id) REFERENCES members (id)
    DEFERRABLE INITIALLY DEFERRED;
"""

MORE_LEGACY = """
CREATE TABLE events (id INTEGER, at DATE, kind TEXT, PRIMARY KEY (id, at));
INSERT INTO events VALUES (1, '2023-05-01', 'a'), (2, '2024-02-03', 'b');
CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT NOT NULL);
INSERT INTO articles VALUES (1, 'Hello'), (2, 'World');
CREATE TABLE notes (id INTEGER PRIMARY KEY, author TEXT, body TEXT);
INSERT INTO notes VALUES (1, 'ada', 'hello'), (2, 'bob', 'hi');
CREATE TABLE django_migrations (id INTEGER PRIMARY KEY, app TEXT, name TEXT, applied DATETIME);
INSERT INTO django_migrations VALUES (1, 'accounts', '0001_initial', '2019-01-01 00:00:00');
CREATE TABLE old_polls (id INTEGER PRIMARY KEY, question TEXT);
INSERT INTO old_polls VALUES (1, 'Tabs or spaces?'), (2, 'Vim or Emacs?');
CREATE TABLE statuses (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE);
INSERT INTO statuses VALUES (1, 'closed'), (2, 'open'), (3, 'on hold');
CREATE TABLE tickets (id INTEGER PRIMARY KEY, status_id INTEGER NOT NULL
    REFERENCES statuses (id), title TEXT);
INSERT INTO tickets VALUES (1, 1, 'done'), (2, 2, 'todo'), (3, 3, 'later'), (4, 2, 'next');
CREATE TABLE teams (id INTEGER PRIMARY KEY, name TEXT, lead_id INTEGER REFERENCES members (id));
CREATE TABLE members (id INTEGER PRIMARY KEY, name TEXT, team_id INTEGER REFERENCES teams (id));
INSERT INTO teams VALUES (1, 'core', 10), (2, 'web', 11);
INSERT INTO members VALUES (10, 'ada', 1), (11, 'bob', 2), (12, 'cy', 1);
"""

RUN = {
    "resources": {
        "settings": {
            "config": {
                "mode": "merge",
                "skip_tables": ["old_polls"],
                "merge_keys": {"statuses": ["code"]},
                "casting_rules": [
                    {"column": "accounts.session_length", "interval_unit": "microseconds"}
                ],
            }
        }
    }
}


def merge(tmp_path: Path, source: Path, dsn: str, reports: str) -> tuple[str, dict]:
    done = consoleai_etl(
        tmp_path, "migrate", str(source), dsn, "--config", "run.yaml", "--report-dir", reports
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    return done.stdout, the_report(tmp_path / reports)[1]


def merge_counts(report: dict, name: str) -> tuple[int, ...]:
    counts = next(t["merge"] for t in report["tables"] if t["table"] == name)
    return tuple(
        counts[c] for c in ("inserted", "updated", "unchanged", "kept_application_changes")
    )


def test_an_application_schema_merges_with_one_config_file(tmp_path: Path, pg_dsn: str) -> None:
    source = legacy_file(tmp_path, refused=False)
    with sqlite3.connect(source) as conn:
        conn.executescript(MORE_LEGACY)
    conn.close()
    execute(pg_dsn, APPLICATION + PARTITIONED_AND_TRIGGERED + MORE_APPLICATION)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(RUN))
    history = fetch(pg_dsn, "SELECT * FROM django_migrations")

    stdout, report = merge(tmp_path, source, pg_dsn, "first")
    assert report["status"] == "success_with_warnings", report["reasons"]
    assert report["mode"] == "merge" and report["promoted"]
    skipped = {t["table"]: t for t in report["skipped_tables"]}
    assert skipped["old_polls"]["source_rows"] == 2
    assert skipped["django_migrations"]["source_rows"] == 1
    assert "migration history (Django)" in skipped["django_migrations"]["reason"]
    assert all(c["passed"] for t in report["tables"] for c in t["checks"])
    assert_every_value_held(pg_dsn)
    assert fetch(pg_dsn, "SELECT id, search FROM articles ORDER BY id") == [
        (1, "hello"),
        (2, "world"),
    ]
    assert fetch(pg_dsn, "SELECT count(*) FROM events") == [(2,)]
    assert fetch(pg_dsn, "SELECT id, author FROM notes ORDER BY id") == [(1, "ada"), (2, "bob")]
    assert fetch(pg_dsn, "SELECT * FROM django_migrations") == history  # never rewritten
    # The seeded lookup table: matched on its code, its children on the application's ids.
    assert fetch(pg_dsn, "SELECT code, id FROM statuses ORDER BY id") == [
        ("open", 1), ("closed", 2), ("on hold", 3)
    ]  # fmt: skip
    assert fetch(
        pg_dsn,
        "SELECT t.id, s.code FROM tickets t JOIN statuses s ON s.id = t.status_id ORDER BY 1",
    ) == [(1, "closed"), (2, "open"), (3, "on hold"), (4, "open")]
    seeded = next(t["merge"]["seeded"] for t in report["tables"] if t["table"] == "statuses")
    # tickets 1, 2 and 4 changed ids; 'on hold' kept its id 3, free in the application
    assert (seeded["matched"], seeded["inserted"], seeded["references_rewritten"]) == (2, 1, 3)
    # The two tables that reference each other: every row, no orphan, no quarantine.
    assert fetch(pg_dsn, "SELECT id, lead_id FROM teams ORDER BY id") == [(1, 10), (2, 11)]
    assert fetch(pg_dsn, "SELECT id, team_id FROM members ORDER BY id") == [
        (10, 1), (11, 2), (12, 1)
    ]  # fmt: skip
    assert report["totals"]["quarantined_rows"] == 0

    # A second merge of the same file writes nothing.
    _, report = merge(tmp_path, source, pg_dsn, "second")
    for table in report["tables"]:
        assert merge_counts(report, table["table"])[:2] == (0, 0), table["table"]

    # The application updates a row after cut-over; the legacy file is merged again.
    execute(pg_dsn, "UPDATE accounts SET nickname = 'ada-renamed' WHERE email = 'ada@example.com'")
    stdout, report = merge(tmp_path, source, pg_dsn, "third")
    assert merge_counts(report, "accounts") == (0, 0, 2, 1)
    assert fetch(pg_dsn, "SELECT nickname FROM accounts WHERE email = 'ada@example.com'") == [
        ("ada-renamed",)
    ]
    assert summary_row(stdout, "accounts")[:4] == ["accounts", "3", "3", "0"]
    markdown = (tmp_path / "third" / "latest.md").read_text()
    assert "but for rows the application changed since the last merge, kept" in markdown
    accounts = next(t for t in report["tables"] if t["table"] == "accounts")
    [proof] = [c for c in accounts["checks"] if c["name"] == "checksum"]
    assert "except 1 kept as the application wrote them" in proof["description"]

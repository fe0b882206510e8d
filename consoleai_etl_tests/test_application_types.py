"""Merge mode into the types of an application's own schema (real PostgreSQL DDL, as a
framework's migrations make it): uuid, inet, cidr, macaddr, interval, real, smallint,
char(n), varchar(n), citext, date, time, timetz, timestamp, timestamptz, numeric(p,s),
boolean, bytea, json, jsonb, arrays, an enum and its array, a constrained domain. Every
source value is in the target, compared column by column in the target's types; every
value the type cannot hold exactly is quarantined with its key and reason; the checksum
checks read the values back in those types."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from psycopg import sql

from consoleai_etl_tests.helpers import (
    checks_by_table,
    execute,
    fetch,
    preflight_error,
    run_job,
    run_raw,
)

APPLICATION = """
CREATE EXTENSION citext;
CREATE TYPE mood AS ENUM ('happy', 'sad', 'so-so');
CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0);
CREATE TABLE accounts (
    id uuid PRIMARY KEY,
    email citext NOT NULL UNIQUE,
    last_ip inet, network cidr, mac macaddr,
    session_length interval, idle interval,
    score real, level smallint, country char(2), nickname varchar(20), handle citext,
    born date, wakes time, wakes_tz timetz, seen_at timestamp, created_at timestamptz,
    balance numeric(10,2), active boolean, avatar bytea, prefs json, meta jsonb,
    tags text[], lucky integer[], friends uuid[], weights real[],
    mood mood, moods mood[], age positive_int);
"""

LEGACY = """
CREATE TABLE accounts (
    id TEXT PRIMARY KEY, email TEXT NOT NULL, last_ip TEXT, network TEXT, mac TEXT,
    session_length BIGINT, idle TEXT, score REAL, level INTEGER, country CHAR(2),
    nickname VARCHAR(20), handle TEXT, born DATE, wakes TEXT, wakes_tz TEXT,
    seen_at DATETIME, created_at DATETIME, balance NUMERIC(10,2), active BOOLEAN,
    avatar BLOB, prefs TEXT, meta TEXT, tags TEXT, lucky TEXT, friends TEXT, weights TEXT,
    mood TEXT, moods TEXT, age INTEGER);
"""

FRIEND = "6f1c2f6e-8a57-4d2a-9b1e-0d2c3b4a5e6f"
COLUMNS = (
    "id, email, last_ip, network, mac, session_length, idle, score, level, country, nickname, "
    "handle, born, wakes, wakes_tz, seen_at, created_at, balance, active, avatar, prefs, meta, "
    "tags, lucky, friends, weights, mood, moods, age"
)
# One row per way a framework's SQLite file holds these values, each value as SQLite
# stored it; then the value each column must hold in PostgreSQL, as a literal of its type.
ROWS = [
    (
        "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        "Ada@Example.com",
        "192.168.1.5",
        "10.0.0.0/8",
        "08-00-2B-01-02-03",
        90_061_000_001,
        "1 day 02:03:04",
        1.5,
        7,
        "NZ",
        "ada",
        "Ada",
        "1990-05-17",
        "07:30",
        "07:30:00+02",
        "2024-01-02 03:04:05.123456",
        "2024-01-02T03:04:05+01:00",
        "12.50",
        1,
        b"\x89PNG",
        '{"b": 1, "a": [1, 2]}',
        '{"b": 1, "a": 2.50}',
        '["x", "y z", "", "NULL", "q\\"uote"]',
        "[1, 2, 3]",
        f'["{FRIEND}"]',
        "[0.5, 1048576, -0.0]",
        "happy",
        '["happy", "so-so"]',
        42,
    ),
    (
        uuid.UUID("0b5e29c4-1f7c-4f6e-8a53-3c2e7f1d9a10").bytes,
        "bob@example.com",
        "2001:db8::1/64",
        "2001:db8::/32",
        "0800.2b01.0204",
        0,
        "P1Y2M3DT4H5M6.5S",
        2,
        -32768,
        "A",
        "bob",
        "BOB",
        "2000-02-29",
        "24:00:00",
        "23:59:59.999999Z",
        "1970-01-01 00:00:00",
        "1999-12-31 23:59:59",
        7,
        0,
        b"",
        "[]",
        "null",
        "[]",
        "[]",
        "[]",
        "[]",
        "sad",
        "[]",
        1,
    ),
    (
        "{6f1c2f6e8a574d2a9b1e0d2c3b4a5e6f}",
        "cy@example.com",
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        '[null, "a"]',
        "[null]",
        None,
        None,
        None,
        None,
        None,
    ),
]
EXPECTED = {
    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11": (
        "ada@example.com",
        "192.168.1.5",
        "10.0.0.0/8",
        "08:00:2b:01:02:03",
        "1 day 01:01:01.000001",
        "1 day 02:03:04",
        "1.5",
        "7",
        "NZ",
        "ada",
        "ada",
        "1990-05-17",
        "07:30:00",
        "07:30:00+02",
        "2024-01-02 03:04:05.123456",
        "2024-01-02 02:04:05+00",
        "12.50",
        "true",
        "\\x89504e47",
        '{"b": 1, "a": [1, 2]}',
        '{"a": 2.50, "b": 1}',
        '{x,"y z","","NULL","q\\"uote"}',
        "{1,2,3}",
        f"{{{FRIEND}}}",
        "{0.5,1.048576e+06,-0}",
        "happy",
        "{happy,so-so}",
        "42",
    ),
    "0b5e29c4-1f7c-4f6e-8a53-3c2e7f1d9a10": (
        "bob@example.com",
        "2001:db8::1/64",
        "2001:db8::/32",
        "08:00:2b:01:02:04",
        "00:00:00",
        "1 year 2 mons 3 days 04:05:06.5",
        "2",
        "-32768",
        "A ",
        "bob",
        "BOB",
        "2000-02-29",
        "24:00:00",
        "23:59:59.999999+00",
        "1970-01-01 00:00:00",
        "1999-12-31 23:59:59+00",
        "7.00",
        "false",
        "\\x",
        "[]",
        "null",
        "{}",
        "{}",
        "{}",
        "{}",
        "sad",
        "{}",
        "1",
    ),
    FRIEND: (
        "cy@example.com",
        *([None] * 20),
        '{NULL,"a"}',
        "{NULL}",
        None,
        None,
        None,
        None,
        None,
    ),
}
# Values none of the target's types hold exactly: each row is quarantined, with its reason.
REFUSED = {
    "not-a-uuid": ("id", "cannot become uuid"),
    "00000000-0000-0000-0000-000000000001": ("score", "cannot become real: float4 would round"),
    "00000000-0000-0000-0000-000000000002": ("level", "cannot become smallint: out of range"),
    "00000000-0000-0000-0000-000000000003": ("last_ip", "cannot become inet"),
    "00000000-0000-0000-0000-000000000004": ("idle", "finer than microseconds"),
    "00000000-0000-0000-0000-000000000005": ("country", "3 characters, longer than 2"),
    "00000000-0000-0000-0000-000000000006": ("mood", "not one of its labels"),
    "00000000-0000-0000-0000-000000000007": ("lucky", "element 2"),
    "00000000-0000-0000-0000-000000000008": ("wakes", "has a time zone offset"),
    "00000000-0000-0000-0000-000000000009": ("age", "violates the constraints of domain"),
    "00000000-0000-0000-0000-00000000000a": ("network", "bits set to the right of its mask"),
    "00000000-0000-0000-0000-00000000000b": ("session_length", "cannot become interval"),
}
BAD_VALUES = {
    "score": 0.1, "level": 40_000, "last_ip": "192.168.1.300", "idle": "00:00:00.0000001",
    "country": "NZL", "mood": "Happy", "lucky": "[1, 2.5]", "wakes": "07:30+02", "age": 0,
    "network": "10.0.0.1/8", "session_length": "soon",
}  # fmt: skip


def assert_every_value_held(dsn: str) -> None:
    """Each value of ``EXPECTED`` compared in its column's own type: the target holds what
    the source meant (json, which has no equality, as the text it keeps)."""
    names = COLUMNS.split(", ")[1:]
    types = dict(
        fetch(
            dsn,
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'accounts'::regclass AND attnum > 0",
        )
    )
    for key, expected in EXPECTED.items():
        equal = sql.SQL(", ").join(
            sql.SQL("{col} IS NOT DISTINCT FROM CAST({value} AS {type})").format(
                col=sql.SQL("{}::text" if types[name] == "json" else "{}").format(
                    sql.Identifier(name)
                ),
                value=sql.Literal(value),
                type=sql.SQL("text" if types[name] == "json" else types[name]),
            )
            for name, value in zip(names, expected, strict=True)
        )
        [row] = fetch(dsn, sql.SQL("SELECT {} FROM accounts WHERE id = %s").format(equal), (key,))
        assert dict(zip(names, row, strict=True)) == dict.fromkeys(names, True), key


def legacy_file(tmp_path: Path, refused: bool = True) -> Path:
    path = tmp_path / "legacy.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(LEGACY)
        conn.executemany(f"INSERT INTO accounts ({COLUMNS}) VALUES ({', '.join('?' * 29)})", ROWS)
        for key, (column, _) in REFUSED.items() if refused else ():
            value = BAD_VALUES.get(column, 1)
            conn.execute(
                f"INSERT INTO accounts (id, email, {column}) VALUES (?, ?, ?)",
                (key, f"{key}@bad", value) if column != "id" else (key, "x@bad", None),
            )
    conn.close()
    return path


def test_every_type_of_an_application_schema_merges_exactly(tmp_path: Path, pg_dsn: str) -> None:
    source = legacy_file(tmp_path)
    execute(pg_dsn, APPLICATION)
    rules = [{"column": "accounts.session_length", "interval_unit": "microseconds"}]
    result, report = run_job(
        source, pg_dsn, tmp_path / "r", mode="merge", casting_rules=rules, allow_divergence=True
    )
    assert result.success, report["reasons"]
    [accounts] = report["tables"]
    assert (accounts["loaded_rows"], accounts["quarantined_rows"]) == (3, len(REFUSED))
    checks = checks_by_table(report)["accounts"]
    assert all(c["passed"] for c in checks.values()), checks
    assert_every_value_held(pg_dsn)
    quarantined = dict(
        fetch(
            pg_dsn,
            "SELECT source_key->>'id', column_name || ': ' || reason FROM consoleai_etl.quarantine",
        )
    )
    for key, (column, reason) in REFUSED.items():
        assert quarantined[key].startswith(f"{column}: ") and reason in quarantined[key], key
    # A second merge finds every value equal in the target's types and writes nothing.
    result, report = run_job(
        source, pg_dsn, tmp_path / "r2", mode="merge", casting_rules=rules, allow_divergence=True
    )
    assert result.success, report["reasons"]
    merge = report["tables"][0]["merge"]
    assert (merge["inserted"], merge["updated"], merge["unchanged"]) == (0, 0, 3)


def test_row_level_security_never_filters_a_merge(tmp_path: Path, pg_dsn: str) -> None:
    """The application's role owns its tables; with FORCE ROW LEVEL SECURITY its policies
    apply to it too and would hide rows from the merge's reads and writes: refused in the
    preflight, naming the table. Without FORCE the owner sees every row and the merge runs."""
    role = f"app_{uuid.uuid4().hex[:8]}"
    source = tmp_path / "legacy.sqlite"
    with sqlite3.connect(source) as conn:
        conn.executescript(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, author TEXT, body TEXT);"
            "INSERT INTO notes VALUES (1, 'ada', 'hello'), (2, 'bob', 'hi');"
        )
    conn.close()
    dbname = fetch(pg_dsn, "SELECT current_database()")[0][0]
    execute(pg_dsn, sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        execute(pg_dsn, sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
            sql.Identifier(dbname), sql.Identifier(role)))  # fmt: skip
        execute(
            pg_dsn,
            sql.SQL(
                "SET ROLE {}; CREATE TABLE notes (id integer PRIMARY KEY, author text, body text);"
                "ALTER TABLE notes ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;"
                "CREATE POLICY mine ON notes USING (author = current_user)"
            ).format(sql.Identifier(role)),
        )
        as_app = f"{pg_dsn} user={role}"
        result = run_raw(source, as_app, tmp_path / "r", mode="merge")
        assert "notes -> notes: row-level security policies apply to this role" in (
            preflight_error(result)
        )
        assert fetch(pg_dsn, "SELECT count(*) FROM notes") == [(0,)]
        execute(pg_dsn, "ALTER TABLE notes NO FORCE ROW LEVEL SECURITY")
        result, report = run_job(source, as_app, tmp_path / "r2", mode="merge")
        assert result.success, report["reasons"]
        assert fetch(pg_dsn, "SELECT id, author FROM notes ORDER BY id") == [
            (1, "ada"),
            (2, "bob"),
        ]
    finally:
        execute(pg_dsn, sql.SQL("ALTER DATABASE {} OWNER TO postgres").format(
            sql.Identifier(dbname)))  # fmt: skip
        execute(pg_dsn, sql.SQL("DROP OWNED BY {}; DROP ROLE {}").format(
            sql.Identifier(role), sql.Identifier(role)))  # fmt: skip


PARTITIONED_AND_TRIGGERED = """
CREATE TABLE events (id bigint NOT NULL, at date NOT NULL, kind text,
                     PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2023 PARTITION OF events FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE articles (id integer PRIMARY KEY, title text NOT NULL, search text);
CREATE TABLE activity (article_id integer, what text);
CREATE FUNCTION articles_search() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN NEW.search := lower(NEW.title); RETURN NEW; END$$;
CREATE TRIGGER articles_search BEFORE INSERT OR UPDATE ON articles
  FOR EACH ROW EXECUTE FUNCTION articles_search();
CREATE FUNCTION articles_activity() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO activity VALUES (NEW.id, TG_OP); RETURN NULL; END$$;
CREATE TRIGGER articles_activity AFTER INSERT ON articles
  FOR EACH ROW EXECUTE FUNCTION articles_activity();
"""


def test_partitioned_tables_and_tables_with_triggers_merge(tmp_path: Path, pg_dsn: str) -> None:
    """A partitioned table (no ``xmax`` to tell inserted rows by) merges into its
    partitions; a table's triggers run as the application's own writes would (a column the
    source does not fill, a row in another table). A trigger that rewrites a merged value
    makes the merge unprovable: refused, naming the table's triggers, nothing kept."""
    source = tmp_path / "legacy.sqlite"
    with sqlite3.connect(source) as conn:
        conn.executescript(
            "CREATE TABLE events (id INTEGER, at DATE, kind TEXT, PRIMARY KEY (id, at));"
            "INSERT INTO events VALUES (1, '2023-05-01', 'a'), (2, '2024-02-03', 'b');"
            "CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT NOT NULL);"
            "INSERT INTO articles VALUES (1, 'Hello'), (2, 'World');"
        )
    conn.close()
    execute(pg_dsn, PARTITIONED_AND_TRIGGERED)
    result, report = run_job(source, pg_dsn, tmp_path / "r", mode="merge")
    assert result.success, report["reasons"]
    merged = {t["table"]: t["merge"] for t in report["tables"]}
    assert (merged["events"]["inserted"], merged["events"]["updated"]) == (2, 0)
    assert fetch(pg_dsn, "SELECT tableoid::regclass::text, id FROM events ORDER BY id") == [
        ("events_2023", 1),
        ("events_2024", 2),
    ]
    assert fetch(pg_dsn, "SELECT id, search FROM articles ORDER BY id") == [
        (1, "hello"),
        (2, "world"),
    ]
    assert fetch(pg_dsn, "SELECT count(*) FROM activity") == [(2,)]
    # The source changes a partitioned row: updated in place, counted as an update.
    with sqlite3.connect(source) as conn:
        conn.execute("UPDATE events SET kind = 'c' WHERE id = 2")
    conn.close()
    result, report = run_job(source, pg_dsn, tmp_path / "r2", mode="merge")
    assert result.success, report["reasons"]
    events = next(t["merge"] for t in report["tables"] if t["table"] == "events")
    assert (events["inserted"], events["updated"], events["unchanged"]) == (0, 1, 1)
    # A trigger that rewrites what the source wrote: the merge cannot be proven.
    execute(
        pg_dsn,
        "CREATE OR REPLACE FUNCTION articles_search() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN NEW.search := lower(NEW.title); NEW.title := upper(NEW.title); "
        "RETURN NEW; END$$",
    )
    with sqlite3.connect(source) as conn:
        conn.execute("INSERT INTO articles VALUES (3, 'New')")
    conn.close()
    result, report = run_job(source, pg_dsn, tmp_path / "r3", mode="merge")
    assert not result.success and not report["promoted"]
    [reason] = [r for r in report["reasons"] if r.startswith("merge failed")]
    assert "{'id': 3}: title 'New' -> 'NEW'" in reason
    assert "changed by its triggers? (articles_activity, articles_search)" in reason
    assert fetch(pg_dsn, "SELECT count(*) FROM articles") == [(2,)]

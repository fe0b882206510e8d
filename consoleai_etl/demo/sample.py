"""Deterministic generator of a ConsoleAI legacy SQLite database.

    python -m consoleai_etl.demo.sample --out data/consoleai_legacy.sqlite --scale 1 [--anomalies]

Scale 1 is about 100k rows; every table but ``roles`` grows linearly with ``--scale`` (a float,
so tests can build tiny databases). The same arguments always produce the same rows.
``--anomalies`` plants the dirt real legacy files carry and lists every planted value in
``<out>.anomalies.json`` so tests can check that each one is accounted for.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import struct
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from consoleai_etl.demo.domain import SCHEMA

ROLES = ("owner", "admin", "developer", "operator", "analyst", "auditor", "billing", "viewer")
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
INSTANCE_TYPES = ("t3.micro", "t3.large", "m5.xlarge", "c6g.2xlarge", "r6i.4xlarge", "g5.xlarge")
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2")
ACTIONS = ("login", "logout", "token.create", "workflow.run", "instance.start", "role.grant")
CATEGORIES = ("gpu", "storage", "network", "licence", "support")
EPOCH = datetime(2019, 1, 1)

# Rows per table at scale 1 (roles is fixed).
BASE_ROWS = {
    "users": 2_000,
    "api_tokens": 3_000,
    "workflows": 1_000,
    "workflow_runs": 20_000,
    "inventory_items": 2_000,
    "ec2_instances": 2_000,
    "audit_events": 68_000,
}


def _ts(rng: random.Random, days: int = 2_000) -> str:
    moment = EPOCH + timedelta(seconds=rng.randrange(days * 86_400))
    return moment.strftime("%Y-%m-%d %H:%M:%S")


class _Generator:
    def __init__(self, scale: float, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = {table: max(1, round(rows * scale)) for table, rows in BASE_ROWS.items()}

    def roles(self) -> Iterator[tuple]:
        for i, name in enumerate(ROLES, start=1):
            yield (i, name, f"{name.title()} role", "2019-01-01 00:00:00")

    def users(self) -> Iterator[tuple]:
        rng = self.rng
        for i in range(1, self.n["users"] + 1):
            settings = {"theme": rng.choice(["dark", "light"]), "tz": rng.choice(REGIONS)}
            yield (
                i,
                f"user{i}@consoleai.example",
                f"User {i}",
                rng.random() > 0.1,
                rng.random() < 0.05,
                round(rng.uniform(0, 5_000), 2),
                json.dumps(settings) if rng.random() > 0.2 else None,
                rng.randbytes(16) if rng.random() > 0.5 else None,
                _ts(rng),
                _ts(rng) if rng.random() > 0.3 else None,
            )

    def user_roles(self) -> Iterator[tuple]:
        rng = self.rng
        users = self.n["users"]
        for user in range(1, users + 1):
            for role in sorted(rng.sample(range(1, len(ROLES) + 1), rng.choice((1, 1, 2)))):
                granted_by = rng.randrange(1, users + 1) if rng.random() > 0.2 else None
                yield (user, role, _ts(rng), granted_by)

    def api_tokens(self) -> Iterator[tuple]:
        rng = self.rng
        for i in range(1, self.n["api_tokens"] + 1):
            scopes = rng.sample(["read", "write", "admin", "billing"], rng.randrange(1, 4))
            yield (
                i,
                rng.randrange(1, self.n["users"] + 1),
                i.to_bytes(4, "big") + rng.randbytes(28),
                f"token {i}" if rng.random() > 0.3 else None,
                json.dumps(scopes),
                _ts(rng),
                _ts(rng, 3_000) if rng.random() > 0.5 else None,
                rng.random() < 0.1,
            )

    def workflows(self) -> Iterator[tuple]:
        rng = self.rng
        for i in range(1, self.n["workflows"] + 1):
            steps = [{"op": rng.choice(ACTIONS), "retries": rng.randrange(4)} for _ in range(3)]
            yield (
                i,
                rng.randrange(1, self.n["users"] + 1),
                f"workflow-{i}",
                json.dumps({"steps": steps, "schedule": "@daily"}),
                rng.randrange(1, 20),
                rng.random() > 0.2,
                _ts(rng),
                _ts(rng) if rng.random() > 0.5 else None,
            )

    def workflow_runs(self) -> Iterator[tuple]:
        rng = self.rng
        for i in range(1, self.n["workflow_runs"] + 1):
            status = rng.choice(STATUSES)
            done = status in ("succeeded", "failed", "cancelled")
            duration = rng.uniform(0.5, 7_200) if done else None
            yield (
                i,
                rng.randrange(1, self.n["workflows"] + 1),
                rng.randrange(1, self.n["users"] + 1) if rng.random() > 0.3 else None,
                status,
                _ts(rng),
                _ts(rng) if done else None,
                duration,
                round(duration * 0.0013, 4) if duration else None,
                json.dumps({"exit_code": rng.randrange(3)}) if done else None,
            )

    def inventory_items(self) -> Iterator[tuple]:
        rng = self.rng
        for i in range(1, self.n["inventory_items"] + 1):
            yield (
                f"SKU-{i:07d}",
                f"Item {i}",
                rng.choice(CATEGORIES),
                rng.randrange(0, 10_000),
                round(rng.uniform(1, 20_000), 2),
                rng.uniform(0.01, 80) if rng.random() > 0.1 else None,
                rng.random() < 0.05,
                _ts(rng)[:10],
            )

    def ec2_instances(self) -> Iterator[tuple]:
        rng = self.rng
        for i in range(1, self.n["ec2_instances"] + 1):
            yield (
                f"i-{i:017x}",
                rng.randrange(1, self.n["users"] + 1),
                rng.choice(INSTANCE_TYPES),
                rng.choice(REGIONS),
                rng.choice(("running", "stopped", "terminated")),
                _ts(rng),
                round(rng.uniform(0.005, 9), 4),
                rng.uniform(0, 100) if rng.random() > 0.1 else None,
                json.dumps({"team": f"team-{rng.randrange(20)}"}) if rng.random() > 0.3 else None,
                rng.random() < 0.5,
            )

    def audit_events(self) -> Iterator[tuple]:
        rng = self.rng
        users = self.n["users"]
        for i in range(1, self.n["audit_events"] + 1):
            action = rng.choice(ACTIONS)
            yield (
                i,
                _ts(rng),
                rng.randrange(1, users + 1) if rng.random() > 0.05 else None,
                action,
                action.split(".")[0],
                str(rng.randrange(1, 100_000)),
                f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
                json.dumps({"ua": "console/2.3", "ms": rng.randrange(1, 900)}),
                rng.random() > 0.02,
            )


TABLE_ORDER = (
    "roles",
    "users",
    "user_roles",
    "api_tokens",
    "workflows",
    "workflow_runs",
    "inventory_items",
    "ec2_instances",
    "audit_events",
)


def _plant_anomalies(conn: sqlite3.Connection) -> list[dict]:
    """Plant legacy dirt and return one record per planted value (table, key, column, kind)."""
    planted: list[dict] = []

    def plant(sql: str, params: tuple, table: str, key: object, column: str, kind: str) -> None:
        conn.execute(sql, params)
        planted.append({"table": table, "key": key, "column": column, "kind": kind})

    max_wf = conn.execute("SELECT max(id) FROM workflows").fetchone()[0]
    max_user = conn.execute("SELECT max(id) FROM users").fetchone()[0]
    plant(
        "UPDATE workflow_runs SET workflow_id = ? WHERE id = 1",
        (max_wf + 1000,),
        "workflow_runs",
        1,
        "workflow_id",
        "orphan_fk",
    )
    plant(
        "UPDATE audit_events SET actor_id = ? WHERE id = 2",
        (max_user + 1000,),
        "audit_events",
        2,
        "actor_id",
        "orphan_fk",
    )
    plant(
        "UPDATE inventory_items SET quantity = 'n/a' WHERE sku = 'SKU-0000001'",
        (),
        "inventory_items",
        "SKU-0000001",
        "quantity",
        "text_in_integer",
    )
    plant(
        "UPDATE users SET created_at = 1577836800 WHERE id = 1",
        (),
        "users",
        1,
        "created_at",
        "unix_epoch_date",
    )
    plant(
        "UPDATE workflows SET updated_at = 2459000.5 WHERE id = 2",
        (),
        "workflows",
        2,
        "updated_at",
        "julian_day_date",
    )
    plant(
        "UPDATE users SET last_login_at = 'last tuesday' WHERE id = 3",
        (),
        "users",
        3,
        "last_login_at",
        "garbage_date",
    )
    plant(
        "UPDATE users SET email = upper(email) WHERE id = 4",
        (),
        "users",
        4,
        "email",
        "duplicate_email_case",
    )
    plant(
        "INSERT INTO users (id, email, display_name, created_at) "
        "VALUES (?, lower((SELECT email FROM users WHERE id = 4)), 'Duplicate', ?)",
        (max_user + 1, "2020-01-01 00:00:00"),
        "users",
        max_user + 1,
        "email",
        "duplicate_email_case",
    )
    plant(
        "UPDATE audit_events SET target_id = CAST(x'6162ff6364' AS TEXT) WHERE id = 3",
        (),
        "audit_events",
        3,
        "target_id",
        "invalid_utf8",
    )
    plant(
        "UPDATE audit_events SET action = 'login' || char(0) || 'x' WHERE id = 4",
        (),
        "audit_events",
        4,
        "action",
        "nul_byte",
    )
    plant(
        "UPDATE workflows SET definition = '{\"steps\": [' WHERE id = 1",
        (),
        "workflows",
        1,
        "definition",
        "invalid_json",
    )
    plant(
        "INSERT INTO inventory_items (sku, name, category, unit_price, updated_on) "
        "VALUES (NULL, 'no sku', 'gpu', 1, '2020-01-01')",
        (),
        "inventory_items",
        None,
        "sku",
        "null_primary_key",
    )
    plant(
        "UPDATE users SET email = 'user5.' || printf('%.300c', 'x') || '@example.com' WHERE id = 5",
        (),
        "users",
        5,
        "email",
        "varchar_overflow",
    )
    plant(
        "UPDATE workflow_runs SET finished_at = '2024-01-02 03:04:05.1234567' WHERE id = 2",
        (),
        "workflow_runs",
        2,
        "finished_at",
        "sub_microsecond",
    )
    planted += _plant_device_imports(conn)
    # NULL in a NOT NULL column: legacy schemas gained constraints after the data was written.
    conn.execute("UPDATE ec2_instances SET region = NULL WHERE instance_id = 'i-00000000000000001'")
    planted.append(
        {
            "table": "ec2_instances",
            "key": "i-00000000000000001",
            "column": "region",
            "kind": "null_in_not_null",
        }
    )
    return planted


DEVICE_IMPORTS = """
CREATE TABLE device_imports (
    id INTEGER PRIMARY KEY,
    location POINT,
    payload,
    flags CHAR(0),
    captured_at TIMESTAMP,
    day DATETIME
);
"""
ANOMALY_TABLES = ("device_imports",)
DEVICE_ROWS = 20


def _plant_device_imports(conn: sqlite3.Connection) -> list[dict]:
    """A table of what application databases store against their declarations: GeoPackage
    geometry BLOBs in a POINT column (INTEGER affinity by SQLite's rule), an untyped column
    of TEXT holding one 68 KB BLOB, CHAR(0), Core Data's REAL seconds since 2001 in a
    TIMESTAMP column, and YYYYMMDD integers in a DATETIME column."""
    conn.executescript(DEVICE_IMPORTS)
    rng = random.Random(11)
    conn.executemany(
        "INSERT INTO device_imports VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                i,
                b"GP\x00\x01" + struct.pack("<dd", rng.uniform(-180, 180), rng.uniform(-90, 90)),
                rng.randbytes(68_000) if i == 7 else f"note {i}",
                "y" if i % 2 else "",
                650_000_000.25 + i * 86_400,
                20050525 + i,
            )
            for i in range(1, DEVICE_ROWS + 1)
        ],
    )
    where = [
        (1, "location", "blob_in_point"),
        (7, "payload", "blob_among_text"),
        (3, "flags", "char_zero"),
        (3, "captured_at", "core_data_timestamp"),
        (4, "day", "yyyymmdd_integer"),
    ]
    return [
        {"table": "device_imports", "key": key, "column": column, "kind": kind}
        for key, column, kind in where
    ]


def _null_tolerant_schema(schema: str) -> str:
    """The DDL with ec2_instances.region nullable, so an anomaly can put a NULL there."""
    return schema.replace("region TEXT NOT NULL,\n    state", "region TEXT,\n    state")


def _restore_not_null(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA writable_schema = ON")
    with conn:
        conn.execute(
            "UPDATE sqlite_master SET sql = replace(sql, 'region TEXT,', 'region TEXT NOT NULL,') "
            "WHERE name = 'ec2_instances'"
        )
    conn.execute("PRAGMA writable_schema = OFF")


def generate(out: Path, scale: float = 1.0, *, anomalies: bool = False, seed: int = 7) -> dict:
    """Write the database to ``out`` (replacing it) and return {table: rows written}."""
    if scale <= 0:
        raise ValueError(f"--scale must be positive, got {scale}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    manifest = out.with_name(out.name + ".anomalies.json")
    manifest.unlink(missing_ok=True)
    gen = _Generator(scale, seed)
    conn = sqlite3.connect(out)
    try:
        conn.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        conn.executescript(_null_tolerant_schema(SCHEMA) if anomalies else SCHEMA)
        counts = {}
        with conn:
            for table in TABLE_ORDER:
                width = len(conn.execute(f"PRAGMA table_info({table})").fetchall())
                marks = ", ".join("?" * width)
                cursor = conn.executemany(
                    f"INSERT INTO {table} VALUES ({marks})", getattr(gen, table)()
                )
                counts[table] = cursor.rowcount
        if anomalies:
            with conn:
                planted = _plant_anomalies(conn)
            _restore_not_null(conn)
            manifest.write_text(json.dumps(planted, indent=2) + "\n")
    finally:
        conn.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m consoleai_etl.demo.sample", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=Path("data/consoleai_legacy.sqlite"))
    parser.add_argument("--scale", type=float, default=1.0, help="1 = about 100k rows")
    parser.add_argument("--anomalies", action="store_true", help="plant legacy dirt")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    try:
        counts = generate(args.out, args.scale, anomalies=args.anomalies, seed=args.seed)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {sum(counts.values()):,} rows in {len(counts)} tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())

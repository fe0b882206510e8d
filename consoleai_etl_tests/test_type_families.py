"""The type registry's families against a real PostgreSQL: each converter sends exactly the
text (or number) the type holds and prints for every source form it accepts, and refuses
what the type would round, truncate or read differently. Replace mode gets the same types
through casting rules (``target_type``), retyped in staging and proven by the checksum."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import psycopg
import pytest

from consoleai_etl.core.errors import ConversionError
from consoleai_etl.core.plan.rules import DEFAULT_RULE, ColumnRule
from consoleai_etl.core.types import registry
from consoleai_etl.core.types.arrays import float_text
from consoleai_etl_tests.helpers import checks_by_table, fetch, run_job

# (type, source value as SQLite stores it): each must read back as PostgreSQL reads the
# same text (``::type::text``), which is also what the checksum compares.
ACCEPTED = [
    ("uuid", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"),
    ("uuid", "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}"),
    ("uuid", "a0eebc999c0b4ef8bb6d6bb9bd380a11"),
    *[("inet", v) for v in ("10.1.2.3", "10.1.2.3/8", "::1", "2001:DB8:0:0:1:0:0:1/64",
                            "::ffff:1.2.3.4", "::1.2.3.4", "::0.0.1.2", "1:0:0:1::")],
    *[("cidr", v) for v in ("10.0.0.0/8", "10.0.0.1/32", "2001:db8::/32", "::ffff:1.2.3.0/120")],
    *[("macaddr", v) for v in ("08:00:2b:01:02:03", "08-00-2B-01-02-03", "08002b:010203",
                               "08002b-010203", "0800.2b01.0203", "0800-2b01-0203",
                               "08002b010203")],
    *[("interval", v) for v in ("1 day, 2:03:04", "P1Y2M3DT4H5M6.5S", "-1 year 2 days",
                                "1 mon -00:00:01", "@ 1 hour ago", "01:02", "90 minutes",
                                "-1 days +23:59:59.999999", "1 week", "100:00:00",
                                "1 year 14 mons", "PT0S", "-1 year -2 mons +3 days -04:05:06",
                                "2 hours 3 minutes 4.25 seconds", "3 d")],
    *[("time", v) for v in ("24:00:00", "12:00", "1:02:03.500", "23:59:59.999999")],
    *[("timetz", v) for v in ("12:00:00+02", "12:00:00+05:30", "12:00:00-03:30:15",
                              "12:00:00Z", "23:59:59.999999-1559")],
    *[("character(3)", v) for v in ("ab", "abc", "a  ", "é", 12)],
    ("citext", "MiXeD"),
    *[("json", v) for v in (' {"b":1, "a":2, "a":3} ', "1e400", "[1,2]", '"\\u0000"')],
    *[("text[]", v) for v in ('["a b", "", "NULL", "q\\"uote", "back\\\\slash", "{", null]',
                              "[]", '["é", "a,b"]')],
    *[("integer[]", v) for v in ("[1, -2, null]", "[2147483647]")],
    *[("numeric(6,2)[]", v) for v in ("[1, 2.5, 0.10]",)],
    *[("boolean[]", v) for v in ("[true, false, null]",)],
    *[("uuid[]", v) for v in ('["A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"]',)],
]  # fmt: skip

REFUSED = [
    ("uuid", "a0eebc99", "not 32 hexadecimal digits"),
    ("uuid", b"\x00" * 15, "16 bytes"),
    ("uuid", 12, "cannot become uuid"),
    ("inet", "fe80::1%eth0", "an IPv6 zone"),
    ("cidr", "10.0.0.1/8", "bits set to the right of its mask"),
    ("macaddr", "08:00-2b:01:02:03", "not a MAC address"),
    ("interval", "1.5 days", "spills"),
    ("interval", "00:00:00.0000001", "finer than microseconds"),
    ("interval", 60, "needs its unit"),
    ("time", "23:59:60", "out of range"),
    ("time", "12:00:00.1234567", "finer than microseconds"),
    ("time", "12:00+02", "offset that time would drop"),
    ("timetz", "12:00+16", "offset out of range"),
    ("character(3)", "abcd", "4 characters, longer than 3"),
    ("real", 0.1, "float4 would round it"),
    ("real", 16_777_217, "float4 would round it"),
    ("smallint", 32_768, "out of range"),
    ("integer", "12", "cannot become integer"),
    ("json", "NaN", "invalid JSON"),
    ("integer[]", "[1, 2.5]", "element 2"),
    ("integer[]", "[[1]]", "one-dimensional"),
    ("text[]", '{"a": 1}', "not a JSON array"),
    ("boolean[]", '["maybe"]', "element 1"),
]


def convert(type_name: str, value: object, rule: ColumnRule = DEFAULT_RULE) -> object:
    pg_type = registry.parse(type_name)
    assert pg_type is not None, type_name
    return registry.converter(pg_type, rule)(value)


@pytest.fixture(scope="module")
def pg(server_dsn: str):
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS citext")
        yield conn


def read_by_postgresql(pg, type_name: str, value: object) -> str:
    """The text PostgreSQL prints for ``value`` read as ``type_name`` (an array from its JSON
    elements, which PostgreSQL reads each as the element type)."""
    if type_name.endswith("[]"):
        query = (
            f"SELECT ARRAY(SELECT CAST(e AS {type_name[:-2]}) FROM "
            "jsonb_array_elements_text(%s::jsonb) e)::text"
        )
    else:
        query = f"SELECT CAST(%s AS {type_name})::text"
    return pg.execute(query, (value if isinstance(value, str) else str(value),)).fetchone()[0]


@pytest.mark.parametrize(("type_name", "value"), ACCEPTED)
def test_a_value_is_sent_as_the_type_prints_it(pg, type_name: str, value: object) -> None:
    sent = convert(type_name, value)
    printed = read_by_postgresql(pg, type_name, value)
    assert sent == printed
    # and the text sent reads back as the same value
    assert pg.execute(f"SELECT CAST(%s AS {type_name})::text", (sent,)).fetchone()[0] == printed


@pytest.mark.parametrize(("type_name", "value", "reason"), REFUSED)
def test_a_value_the_type_would_change_is_refused(type_name: str, value: object, reason: str):
    with pytest.raises(ConversionError, match=reason):
        convert(type_name, value)


def test_interval_numbers_in_the_unit_a_rule_names(pg) -> None:
    for unit, per in (("microseconds", 1), ("milliseconds", 1_000), ("seconds", 1_000_000)):
        rule = ColumnRule(interval_unit=unit)
        for number in (0, 1, -1, 90_061, 86_400_000_000, -90_061_000_001):
            sent = convert("interval", number, rule)
            [(equal, printed)] = pg.execute(
                "SELECT %s::interval = %s * interval '1 microsecond', %s::interval::text",
                (sent, number * per, sent),
            ).fetchall()
            assert equal and printed == sent, (unit, number)
    assert convert("interval", 1.5, ColumnRule(interval_unit="seconds")) == "00:00:01.5"
    with pytest.raises(ConversionError, match="fraction of a microsecond"):
        convert("interval", 1.5, ColumnRule(interval_unit="microseconds"))


@pytest.mark.parametrize(
    "number", [0.5, 1.0, 0.1, 1e15, 1e16, 123456789012345.0, 1e-5, 1e-4, -0.0, 2.0**70, 1e300]
)
def test_floats_print_as_postgresql_prints_them(pg, number: float) -> None:
    assert (
        float_text(number, single=False)
        == pg.execute("SELECT %s::float8::text", (number,)).fetchone()[0]
    )
    if abs(number) > 3.4e38:
        return  # beyond float4
    single = float(pg.execute("SELECT %s::float8::float4::float8", (number,)).fetchone()[0])
    assert (
        float_text(single, single=True)
        == pg.execute("SELECT %s::float4::text", (single,)).fetchone()[0]
    )


def test_numbers_travel_as_the_wide_kind_narrowed_exactly() -> None:
    assert convert("smallint", -32_768) == -32_768
    assert convert("real", 16_777_216) == 16_777_216.0
    assert convert("real", 0.5) == 0.5


def test_replace_mode_takes_the_same_types_through_casting_rules(
    tmp_path: Path, pg_dsn: str
) -> None:
    path = tmp_path / "legacy.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE devices (id TEXT PRIMARY KEY, ip TEXT, uptime INTEGER, ratio REAL, "
            "port INTEGER, code TEXT DEFAULT 'ab', opens TEXT, tags TEXT);"
        )
        conn.executemany(
            "INSERT INTO devices VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    str(uuid.UUID(int=1)).upper(),
                    "10.0.0.1",
                    1_500,
                    0.5,
                    443,
                    "ab",
                    "08:00",
                    '["a"]',
                ),
                (str(uuid.UUID(int=2)), "::1", 0, 2.0, 80, "xyz", "24:00", "[]"),
                (str(uuid.UUID(int=3)), "nope", 1, 0.1, 70_000, "long", "25:00", "[1]"),
            ],
        )
    conn.close()
    types = {"id": "uuid", "ip": "inet", "uptime": "interval", "ratio": "real",
             "port": "smallint", "code": "char(3)", "opens": "time", "tags": "text[]"}  # fmt: skip
    rules = [{"column": f"devices.{c}", "target_type": t} for c, t in types.items()]
    rules.append({"column": "devices.uptime", "interval_unit": "seconds"})
    result, report = run_job(
        path, pg_dsn, tmp_path / "r", casting_rules=rules, allow_divergence=True
    )
    assert result.success, report["reasons"]
    [table] = report["tables"]
    assert (table["loaded_rows"], table["quarantined_rows"]) == (2, 1)
    assert all(c["passed"] for c in checks_by_table(report)["devices"].values())
    columns = dict(
        fetch(
            pg_dsn,
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'devices'::regclass AND attnum > 0",
        )
    )
    assert columns == {
        "id": "uuid", "ip": "inet", "uptime": "interval", "ratio": "real", "port": "smallint",
        "code": "character(3)", "opens": "time without time zone", "tags": "text[]",
    }  # fmt: skip
    stored = fetch(
        pg_dsn,
        "SELECT id::text, ip::text, uptime::text, ratio, port, code, opens::text, tags::text "
        "FROM devices ORDER BY id",
    )
    assert stored == [
        ("00000000-0000-0000-0000-000000000001", "10.0.0.1/32", "00:25:00", 0.5, 443, "ab ",
         "08:00:00", "{a}"),
        ("00000000-0000-0000-0000-000000000002", "::1/128", "00:00:00", 2.0, 80, "xyz",
         "24:00:00", "{}"),
    ]  # fmt: skip
    # re-verified later, the checks read the columns in their types again
    verified, report = run_job(
        path, pg_dsn, tmp_path / "v", job="consistency_check_job", casting_rules=rules,
        allow_divergence=True,
    )  # fmt: skip
    assert verified.success and all(
        c["passed"] for c in checks_by_table(report)["devices"].values()
    ), report["reasons"]
    # the default of the retyped column came along, in its type
    assert fetch(
        pg_dsn,
        "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'devices'::regclass",
    ) == [("'ab'::bpchar",)]

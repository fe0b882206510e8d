"""Every run option from the command line: ``consoleai-etl migrate|verify --config RUN.yaml``
takes a Dagster run config (or the bare mapping of its settings), validated by the model a
run validates it with, with flags winning over it; options naming tables or columns the
source lacks stop the run in its preflight, named in the words of where they came from
(the file and the rule for the command, the config key for a Dagster run); and ``verify`` in
merge mode names the keys and columns that differ. The installed command, real SQLite files,
a fresh PostgreSQL database per test."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import dagster as dg
import pytest
import yaml

from consoleai_etl.core.source.catalog import introspect
from consoleai_etl.defs.settings import RUN_OPTIONS
from consoleai_etl_tests.helpers import (
    checks_by_table,
    dagster_env,
    execute,
    fetch,
    preflight_error,
    run_raw,
)
from consoleai_etl_tests.test_console_script import consoleai_etl, summary_row, the_report
from consoleai_etl_tests.test_merge_mode import application, legacy_db

LEGACY = """
CREATE TABLE Customer (CustomerId INTEGER PRIMARY KEY, EMail TEXT NOT NULL,
                       Legacy_Flag INTEGER, Phone TEXT);
INSERT INTO Customer VALUES (1, 'a@x', 1, '55' || char(0) || '5'), (2, 'b@x', 0, NULL);
CREATE TABLE roles (id INTEGER PRIMARY KEY, code TEXT NOT NULL, label TEXT);
INSERT INTO roles VALUES (1, 'admin', 'Admin'), (2, 'dev', 'Developer');
"""

APPLICATION = """
CREATE TABLE public.clients (customerid integer PRIMARY KEY, email text NOT NULL,
                             telephone text);
CREATE TABLE public.roles (id integer PRIMARY KEY, code text NOT NULL UNIQUE, label text);
INSERT INTO public.roles VALUES (100, 'admin', 'Administrator');
"""

# Every merge option, and a casting rule the merge needs: Customer.Phone holds a NUL,
# which PostgreSQL's text cannot hold (without the rule, the row is quarantined).
OPTIONS = {
    "mode": "merge",
    "merge_tables": {"Customer": "clients"},
    "merge_columns": {"Customer.Phone": "telephone"},
    "ignore_columns": ["Customer.Legacy_Flag"],
    "merge_keys": {"roles": ["code"]},
    "on_conflict": "target",
    "casting_rules": [{"column": "Customer.Phone", "text_repair": ["strip_nul"]}],
    "report_dir": "from-file",
}


def run_config(options: dict) -> dict:
    return {"resources": {"settings": {"config": options}}}


def write(path: Path, content: object) -> Path:
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


def merge_setup(tmp_path: Path, pg_dsn: str) -> Path:
    application(pg_dsn, APPLICATION)
    return legacy_db(tmp_path, LEGACY)


@pytest.mark.parametrize("form", ["run config", "bare"])
def test_every_merge_option_from_the_file_and_a_flag_wins_over_it(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    source = merge_setup(tmp_path, pg_dsn)
    config = write(tmp_path / "run.yaml", run_config(OPTIONS) if form == "run config" else OPTIONS)
    env = dagster_env(tmp_path, source, "postgresql://nobody@127.0.0.1:9/none", "env_reports")

    done = consoleai_etl(
        tmp_path, "migrate", str(source), pg_dsn, "--config", str(config),
        "--report-dir", "from-flag", "--on-conflict", "source", env=env,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "from-file").exists() and not (tmp_path / "env_reports").exists()
    _, report = the_report(tmp_path / "from-flag")
    assert report["mode"] == "merge" and report["promoted"]
    # merge_tables, merge_columns, ignore_columns, and the rule's repair of the NUL
    assert fetch(pg_dsn, "SELECT * FROM clients ORDER BY customerid") == [
        (1, "a@x", "555"),
        (2, "b@x", None),
    ]
    # merge_keys: roles merged on code, the application's admin row matched
    assert fetch(pg_dsn, "SELECT code FROM roles ORDER BY code") == [("admin",), ("dev",)]
    assert summary_row(done.stdout, "roles")[4:7] == ["1", "1", "0"]  # inserted, updated
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs()
    settings = run.run_config["resources"]["settings"]["config"]
    assert settings.pop("pg_dsn")  # the positional DSN
    assert settings == {
        **OPTIONS,
        "report_dir": "from-flag",
        "on_conflict": "source",
        "sqlite_path": str(source),
    }


def test_help_says_flags_win_over_the_file(tmp_path: Path) -> None:
    done = consoleai_etl(tmp_path, "migrate", "--help")
    text = " ".join(done.stdout.split())
    assert "--config RUN.yaml" in text and "--on-conflict {target,source,fail}" in text
    assert "--orphans {quarantine,keep,fail}" in text
    assert "A flag wins over the same option in the --config file" in text


ALLOWED = ", ".join(RUN_OPTIONS)
RULE_FIELDS = (
    "column, declared_type, target_type, date_encoding, on_error, text_repair, interval_unit"
)
PREFIX = "resources.settings.config."


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (
            run_config({"mode": "merge", "merge_tabels": {"a": "b"}}),
            f"{PREFIX}merge_tabels: unknown option (allowed: {ALLOWED})",
        ),
        ({"orphans": "drop"}, "orphans: not one of quarantine, keep, fail (got 'drop')"),
        ({"dry_run": "yes"}, "dry_run: expected true or false (got 'yes')"),
        ({"merge_keys": {"roles": "code"}}, "merge_keys.roles: expected a list (got 'code')"),
        (
            run_config({"casting_rules": [{"column": "roles.label", "colour": "red"}]}),
            f"{PREFIX}casting_rules[0].colour: unknown option (allowed: {RULE_FIELDS})",
        ),
        (
            {"casting_rules": [{"column": "roles.label", "target_type": "money"}]},
            "casting_rules[0].target_type: unsupported target_type 'money'",
        ),
        (
            {"ignore_columns": ["Phone"]},
            "ignore_columns: 'Phone': write a source column as table.column",
        ),
        (
            {"asset_graph": {"tables": []}},
            f"asset_graph: unknown option (allowed: {ALLOWED})",
        ),
        (
            {"resources": {"settings": {"config": {}}}, "loggers": {}},
            "loggers: not read by consoleai-etl, which takes only the run options under "
            "resources.settings.config (the command sets the rest)",
        ),
        ({"resources": {"settings": ["mode"]}}, "resources.settings: expected a mapping"),
        ("- mode: merge\n", "expected a mapping of run options, or a run config"),
        ("mode: [merge\n", "cannot read run options from"),
    ],
)
def test_a_bad_config_file_exits_two_naming_the_file_and_the_key(
    tmp_path: Path, content: object, says: str
) -> None:
    """Validated as a run validates its config, before any run starts."""
    source = legacy_db(tmp_path, LEGACY)
    config = write(tmp_path / "run.yaml", content)
    dsn = "postgresql://nobody@127.0.0.1:9/none"

    done = consoleai_etl(tmp_path, "verify", str(source), dsn, "--config", str(config))

    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("consoleai-etl verify: ") and f"{config}: " in line
    assert says in line
    assert done.stdout == "" and not (tmp_path / "reports").exists()


def test_an_empty_config_sets_nothing_and_the_variables_still_apply(
    tmp_path: Path, pg_dsn: str
) -> None:
    """The variables and defaults apply to what neither the file nor a flag sets (here: the
    report directory and the mode); ``--rules`` goes with ``--config``."""
    source = legacy_db(tmp_path, LEGACY)
    config = write(tmp_path / "run.yaml", "resources:\n  settings:\n    config:\n")
    rules = write(tmp_path / "rules.yaml", OPTIONS["casting_rules"])
    env = dagster_env(tmp_path, source, pg_dsn, "env_reports")
    del env["DAGSTER_HOME"]

    done = consoleai_etl(
        tmp_path, "migrate", str(source), pg_dsn, "--config", str(config), "--rules", str(rules),
        env=env,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    _, report = the_report(tmp_path / "env_reports")
    assert report["mode"] == "replace" and report["promoted"]
    assert fetch(pg_dsn, 'SELECT "Phone" FROM "Customer" ORDER BY 1') == [("555",), (None,)]


@pytest.mark.parametrize(
    ("options", "rules", "says"),
    [
        (
            run_config({**OPTIONS, "casting_rules": [
                {"column": "roles.label", "text_repair": ["strip_nul"]},
                {"column": "Customer.Phoen", "text_repair": ["strip_nul"]},
            ]}),
            None,
            "{config}: resources.settings.config.casting_rules[1].column: the source's table "
            "Customer has no column 'Phoen' (did you mean 'Phone'?)",
        ),
        (
            OPTIONS,
            [{"column": "Customers.Phone", "text_repair": ["strip_nul"]}],
            "{rules}: casting rule #1: column: the source has no table 'Customers' (did you "
            "mean 'Customer'?)",
        ),
        (
            {**OPTIONS, "merge_tables": {"Custmer": "clients"}, "ignore_columns": ["roles.x"]},
            None,
            "{config}: merge_tables.Custmer: the source has no table 'Custmer' (did you mean "
            "'Customer'?); {config}: ignore_columns[0]: the source's table roles has no column "
            "'x' (it has: id, code, label)",
        ),
    ],
)  # fmt: skip
def test_a_name_the_source_lacks_stops_the_run_in_its_preflight_naming_file_and_rule(
    tmp_path: Path, pg_dsn: str, options: dict, rules: list | None, says: str
) -> None:
    source = merge_setup(tmp_path, pg_dsn)
    config = write(tmp_path / "run.yaml", options)
    args = ["--config", str(config)]
    if rules is not None:
        args += ["--rules", str(write(tmp_path / "rules.yaml", rules))]

    done = consoleai_etl(tmp_path, "migrate", str(source), pg_dsn, *args)

    assert done.returncode == 1
    last = done.stderr.splitlines()[-1]
    assert last.endswith(
        "failed before writing a report: "
        + says.format(config=config, rules=tmp_path / "rules.yaml")
    )
    assert fetch(pg_dsn, "SELECT count(*) FROM clients") == [(0,)]
    assert not (tmp_path / "from-file").exists()


NOTES = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"


@pytest.mark.parametrize(
    ("job", "step"),
    [("legacy_migration_job", "legacy_tables"), ("consistency_check_job", "consistency_preflight")],
)
def test_a_dagster_run_names_the_config_key_of_a_rule_for_a_column_the_source_lacks(
    tmp_path: Path, pg_dsn: str, job: str, step: str
) -> None:
    source = legacy_db(tmp_path, NOTES)
    rules = [
        {"column": "notes.body", "on_error": "null"},
        {"column": "notes.bdy", "on_error": "null"},
    ]

    result = run_raw(source, pg_dsn, tmp_path / "r", job, casting_rules=rules)

    assert preflight_error(result, step) == (
        "casting_rules[1].column: the source's table notes has no column 'bdy' "
        "(did you mean 'body'?)"
    )
    assert fetch(pg_dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_a_dagster_run_names_merge_options_and_a_rules_file_named_by_the_environment(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = merge_setup(tmp_path, pg_dsn)
    rules = write(tmp_path / "rules.yaml", [{"column": "nope.x", "on_error": "null"}])
    monkeypatch.setenv("CONSOLEAI_CASTING_RULES", str(rules))

    result = run_raw(
        source, pg_dsn, tmp_path / "r", mode="merge",
        merge_columns={"Customer.Fone": "telephone"}, merge_keys={"role": ["code"]},
    )  # fmt: skip

    assert preflight_error(result) == (
        f"{rules}: casting rule #1: column: the source has no table 'nope' (it has: Customer, "
        "roles); merge_keys.role: the source has no table 'role' (did you mean 'roles'?); "
        "merge_columns['Customer.Fone']: the source's table Customer has no column 'Fone' "
        "(did you mean 'Phone'?)"
    )


def test_verify_in_merge_mode_names_the_keys_and_columns_the_target_does_not_hold(
    tmp_path: Path, pg_dsn: str
) -> None:
    """The source changed a row since the merge and the application deleted one: verify
    names both (a row the application changed is its own, kept: no failure)."""
    source = merge_setup(tmp_path, pg_dsn)
    config = write(tmp_path / "run.yaml", OPTIONS)
    merged = consoleai_etl(tmp_path, "migrate", str(source), pg_dsn, "--config", str(config))
    assert merged.returncode == 0, merged.stderr[-3000:]
    with closing(sqlite3.connect(source)) as conn, conn:
        conn.execute("UPDATE Customer SET Phone = '999' WHERE CustomerId = 1")
    execute(pg_dsn, "DELETE FROM clients WHERE customerid = 2")

    done = consoleai_etl(
        tmp_path, "verify", str(source), pg_dsn, "--config", str(config), "--report-dir", "v"
    )

    assert done.returncode == 1
    assert "verification failure" in done.stdout
    text = " ".join(done.stdout.split())
    assert (
        "2 source rows are not in public.clients with equal values: {'CustomerId': 1}: "
        "Phone '999' -> '555'; {'CustomerId': 2}: missing in target" in text
    )
    _, report = the_report(tmp_path / "v")
    proof = checks_by_table(report)["Customer"]["checksum"]
    assert proof["metadata"]["divergent_keys"] == [
        {
            "key": {"CustomerId": 1},
            "divergence": "values differ",
            "columns": {"Phone": {"source": "999", "target": "555"}},
        },
        {"key": {"CustomerId": 2}, "divergence": "missing in target"},
    ]
    # on_conflict: target kept the application's admin row (found by its merge key): kept
    roles = checks_by_table(report)["roles"]["checksum"]
    assert roles["passed"] and roles["metadata"]["kept_application_changes"] == 1


def test_a_column_is_found_whatever_dots_its_table_name_holds() -> None:
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.executescript('CREATE TABLE "a.b" (c, "d.e"); CREATE TABLE a (b);')
        catalog = introspect(conn)
    assert [catalog.no_column(name) for name in ("a.b.c", "a.b.d.e", "a.b")] == [None] * 3
    assert catalog.no_column("a.b.x") == "the source's table a.b has no column 'x' (it has: c, d.e)"
    assert catalog.no_column("z.c") == "the source has no table 'z' (it has: a, a.b)"

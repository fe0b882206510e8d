"""The ``consoleai-etl`` console script, run as the installed command in a real subprocess
(or a real pseudo-terminal), against real SQLite files and a fresh PostgreSQL database."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import sqlite3
import struct
import subprocess
import sys
import termios
import tomllib
from contextlib import closing
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from rich.cells import cell_len

from consoleai_etl.demo.app_schema import create_app_schema, insert_post_cutover_rows
from consoleai_etl_tests.helpers import broken_page_db, dagster_env, execute, fetch

SCRIPT = Path(sys.executable).with_name("consoleai-etl")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# Variables that would choose for rich (colours, terminal size) or for the run.
NOT_INHERITED = {"DAGSTER_HOME", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS",
                 "LINES"}  # fmt: skip


def plain_env() -> dict[str, str]:
    """This environment without an instance, options or display settings of its own: the
    command line and the terminal (or its absence) decide."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in NOT_INHERITED and not k.startswith("CONSOLEAI")
    }


def consoleai_etl(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=tmp_path,
        env=env or plain_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def the_report(report_dir: Path) -> tuple[Path, dict]:
    """The one run report in ``report_dir``, and its content."""
    [path] = report_dir.glob("migration-report-*.json")
    return path, json.loads(path.read_text())


def summary_row(stdout: str, table: str) -> list[str]:
    """The cells of ``table``'s row in the printed summary (split on whitespace)."""
    [row] = [line.split() for line in stdout.splitlines() if line.split()[:1] == [table]]
    return row


def test_migrate_exits_zero_and_prints_every_table_with_its_counts(
    sample_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    reports = tmp_path / "out"
    done = consoleai_etl(tmp_path, "migrate", str(sample_db), pg_dsn, "--report-dir", str(reports))

    assert done.returncode == 0, done.stderr[-3000:]
    json_path, report = the_report(reports)
    assert report["status"] == "success" and report["promoted"]
    assert len(report["tables"]) == 9
    for table in report["tables"]:
        checks = len(table["checks"])
        assert summary_row(done.stdout, table["table"])[:4] == [
            table["table"],
            f"{table['source_rows']:,}",
            f"{table['loaded_rows']:,}",
            "0",
        ]
        assert summary_row(done.stdout, table["table"])[-2:] == [f"{checks}/{checks}", "—"]
        [(rows,)] = fetch(pg_dsn, f'SELECT count(*) FROM public."{table["table"]}"')
        assert rows == table["loaded_rows"] > 0
    assert "migration success\n  - all checks passed, no row quarantined\n" in done.stdout
    html = json_path.with_suffix(".html")  # the HTML report, when the run writes one
    opened = html if html.is_file() else json_path.with_suffix(".md")
    assert done.stdout.rstrip().endswith(f"report: {opened}")
    # Not a terminal: the job's plain log lines on stderr, as `dagster job execute` prints
    # them, and no escape sequence anywhere.
    # One line for the tables staged, naming each of so few.
    staged = r" - INFO - legacy_migration_job - .* - legacy_tables - 9 tables staged: "
    assert re.search(staged + r".*; users: 100 rows in ", done.stderr)
    assert "\x1b[" not in done.stdout + done.stderr


def test_a_dry_run_leaves_the_target_empty(sample_db: Path, pg_dsn: str, tmp_path: Path) -> None:
    done = consoleai_etl(tmp_path, "migrate", str(sample_db), pg_dsn, "--dry-run")

    assert done.returncode == 0, done.stderr[-3000:]
    _, report = the_report(tmp_path / "reports")  # the default report directory
    assert report["dry_run"] and not report["promoted"]
    assert "migration success (DRY RUN: target untouched)" in done.stdout
    header = done.stdout.splitlines()[0].split()
    assert "staged" in header and "loaded" not in header  # nothing reached the target
    assert fetch(pg_dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_merge_mode_prints_each_tables_merge_counts(
    sample_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        create_app_schema(conn, "consoleai_app")
        insert_post_cutover_rows(conn, "consoleai_app")

    done = consoleai_etl(
        tmp_path, "migrate", str(sample_db), pg_dsn, "--mode", "merge", "--schema", "consoleai_app"
    )

    assert done.returncode == 0, done.stderr[-3000:]
    _, report = the_report(tmp_path / "reports")
    assert report["mode"] == "merge" and report["promoted"]
    header = next(line for line in done.stdout.splitlines() if "source rows" in line)
    assert "inserted   updated   unchanged   extra in target" in header
    merged = {t["table"]: t["merge"] for t in report["tables"]}
    assert merged["users"]["inserted"] == 100 and merged["users"]["extra_in_target"] == 3
    for table, counts in merged.items():
        cells = [f"{counts[name]:,}" for name in ("inserted", "updated", "unchanged")]
        assert summary_row(done.stdout, table)[4:8] == [*cells, f"{counts['extra_in_target']:,}"]


def migrate_then_lose_a_row(tmp_path: Path, sample_db: Path, pg_dsn: str) -> None:
    """A clean migration, then row 7 of workflow_runs deleted in the target."""
    migrated = consoleai_etl(tmp_path, "migrate", str(sample_db), pg_dsn)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    execute(pg_dsn, "DELETE FROM workflow_runs WHERE id = 7")


def test_verify_after_a_delete_exits_one_naming_the_failed_checks(
    sample_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    migrate_then_lose_a_row(tmp_path, sample_db, pg_dsn)
    reports = tmp_path / "verified"

    done = consoleai_etl(tmp_path, "verify", str(sample_db), pg_dsn, "--report-dir", str(reports))

    assert done.returncode == 1
    _, report = the_report(reports)
    assert report["job"] == "consistency_check_job" and report["status"] == "failure"
    lines = done.stdout.splitlines()
    [row] = [i for i, line in enumerate(lines) if line.split()[:1] == ["workflow_runs"]]
    assert lines[row].split()[-2:] == ["4/6", "row_count"]
    assert lines[row + 1].split() == ["checksum"]  # the failed checks, one a line
    assert summary_row(done.stdout, "users")[-2:] == ["5/5", "—"]
    assert "verification failure\n" in done.stdout
    assert "{'id': 7}: missing in target" in done.stdout
    assert "loaded" not in done.stdout.splitlines()[0]  # a verification loads nothing
    assert "--allow-divergence" not in done.stdout  # not an option of verify
    # The reports say what ran: a verification, charted by its checks' time.
    html = (reports / f"migration-report-{report['run_id']}.html").read_text()
    assert f"<title>Verification report {report['run_id']}</title>" in html
    assert "<h1>Verification report</h1>" in html and "Migration report" not in html
    assert "<h2>Tables: check time and source rows</h2>" in html
    assert all(t["check_seconds"] is not None for t in report["tables"])
    markdown = (reports / f"migration-report-{report['run_id']}.md").read_text()
    assert markdown.startswith("# Verification report\n")


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("migrate", ["--schema", "--mode", "--dry-run", "--allow-divergence", "--rules",
                     "--report-dir", "SOURCE.sqlite", "POSTGRES_DSN"]),
        ("verify", ["--schema", "--mode", "--rules", "--report-dir", "SOURCE.sqlite",
                    "POSTGRES_DSN"]),
    ],
)  # fmt: skip
def test_help_lists_each_commands_options(tmp_path: Path, command: str, options: list) -> None:
    done = consoleai_etl(tmp_path, command, "--help")

    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith(f"usage: consoleai-etl {command} ")
    assert [o for o in options if o not in done.stdout] == []
    assert ("--dry-run" in done.stdout) == (command == "migrate")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["migrate", "{src}", "{dsn}", "--mode", "bogus"], "argument --mode: invalid choice"),
        (["migrate", "{src}"], "the following arguments are required: POSTGRES_DSN"),
        (["export", "{src}", "{dsn}"], "argument COMMAND: invalid choice: 'export'"),
        (["verify", "{tmp}/missing.sqlite", "{dsn}"], "missing.sqlite does not exist"),
        (["migrate", "{src}", "host=h port"], "POSTGRES_DSN host=h port: missing"),
        (["migrate", "{src}", "mysql://u@h/db"], "mysql:// is not a PostgreSQL address"),
        (["migrate", "{src}", "{dsn}", "--rules", "{tmp}/rules.yaml"], "rule #1: target_type: "),
    ],
)
def test_a_bad_command_line_exits_two_with_one_line(
    sample_db: Path, tmp_path: Path, args: list[str], says: str
) -> None:
    (tmp_path / "rules.yaml").write_text("- {column: users.id, target_type: money}\n")
    dsn = "postgresql://nobody@127.0.0.1:9/none"
    filled = [a.format(src=sample_db, dsn=dsn, tmp=tmp_path) for a in args]

    done = consoleai_etl(tmp_path, *filled)

    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("consoleai-etl") and says in line
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "reports").exists()


def test_version_is_the_projects(tmp_path: Path) -> None:
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())

    done = consoleai_etl(tmp_path, "--version")

    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == f"consoleai-etl {project['project']['version']}\n"


@pytest.mark.parametrize("args", [["--version"], ["verify", "--help"], ["export", "a", "b"]])
def test_help_version_and_a_refused_command_line_answer_before_dagster_is_imported(
    tmp_path: Path, args: list[str]
) -> None:
    """Importing Dagster takes seconds: what needs no run must not wait for it."""
    env = {**plain_env(), "PYTHONPROFILEIMPORTTIME": "1"}  # Python lists each import

    done = consoleai_etl(tmp_path, *args, env=env)

    imported = [line.rpartition("|")[2].strip() for line in done.stderr.splitlines()]
    assert "consoleai_etl.cli.arguments" in imported
    assert [name for name in imported if name.partition(".")[0] == "dagster"] == []


@pytest.mark.parametrize("kind", ["not SQLite", "corrupt"])
def test_a_run_stopped_by_its_preflight_exits_one_with_its_reason(
    pg_dsn: str, tmp_path: Path, kind: str
) -> None:
    """The corrupt file is refused by the integrity check the command starts early."""
    source = tmp_path / "legacy.sqlite"
    if kind == "corrupt":
        broken_page_db(source)
    else:
        source.write_text("just some text\n")

    done = consoleai_etl(tmp_path, "migrate", str(source), pg_dsn)

    assert done.returncode == 1
    last = done.stderr.splitlines()[-1]
    assert re.fullmatch(r"run [0-9a-f-]{36} failed before writing a report: .*", last)
    reason = {"not SQLite": "not a SQLite database", "corrupt": "is corrupt (database disk image"}
    assert f"{source}" in last and reason[kind] in last
    assert (done.stdout + done.stderr).count(reason[kind]) == 1  # not echoed by the log
    assert "Not executing" not in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "reports").exists()


def test_an_unreachable_server_is_named_by_the_argument_not_a_variable(
    sample_db: Path, tmp_path: Path
) -> None:
    done = consoleai_etl(tmp_path, "migrate", str(sample_db), "postgresql://nobody@127.0.0.1:1/x")

    assert done.returncode == 1
    last = done.stderr.splitlines()[-1]
    assert "cannot connect to PostgreSQL at user=nobody" in last
    assert last.endswith("(check POSTGRES_DSN)") and "CONSOLEAI_" not in done.stderr


def test_verify_of_a_schema_never_migrated_says_so_in_one_line(
    sample_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    done = consoleai_etl(tmp_path, "verify", str(sample_db), pg_dsn, "--schema", "nothing_here")

    assert done.returncode == 1 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert "schema nothing_here on " in line
    assert "holds none of the source's 9 tables ('api_tokens', 'audit_events'" in line
    assert line.endswith("nothing was migrated there; migrate first, or verify the schema "
                         "the migration went into")  # fmt: skip


def test_with_dagster_home_the_run_is_in_that_instance_without_the_password(
    sample_db: Path, pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The graph comes from SOURCE, not from CONSOLEAI_SQLITE_PATH (another file, other
    tables); the report goes to CONSOLEAI_REPORT_DIR, the option left to its variable; the
    rules file's rules are in the run config, and applied."""
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    env = dagster_env(tmp_path, other, "postgresql://nobody@127.0.0.1:9/none", "env_reports")
    rules = tmp_path / "rules.yaml"
    rules.write_text("casting_rules:\n  - {column: users.credit_balance, target_type: text}\n")
    secret = "Cli-S3cret-pw"

    done = consoleai_etl(
        tmp_path, "migrate", str(sample_db), make_conninfo(pg_dsn, password=secret),
        "--rules", str(rules), env=env,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    _, report = the_report(tmp_path / "env_reports")
    [users] = [t for t in report["tables"] if t["table"] == "users"]
    [balance] = [c for c in users["columns"] if c["name"] == "credit_balance"]
    assert balance["pg_type"] == "text"
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs()
    assert run.run_id == report["run_id"] and run.job_name == "legacy_migration_job"
    assert run.status == dg.DagsterRunStatus.SUCCESS
    settings = run.run_config["resources"]["settings"]["config"]
    assert settings["sqlite_path"] == str(sample_db)
    assert settings["casting_rules"] == [{"column": "users.credit_balance", "target_type": "text"}]
    assert secret not in json.dumps(run.run_config) + done.stdout + done.stderr


def in_terminal(tmp_path: Path, *args: str, size: tuple[int, int] = (50, 160)) -> tuple[int, str]:
    """Run the command with a pseudo-terminal (``size``: lines, columns) as its stdin, stdout
    and stderr; its exit status and everything it wrote."""
    main, child = os.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    process = subprocess.Popen(
        [str(SCRIPT), *args],
        cwd=tmp_path,
        env={**plain_env(), "TERM": "xterm-256color"},
        stdin=child,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    written = b""
    while select.select([main], [], [], 120)[0]:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the command exited and closed the terminal
            break
        written += chunk
    os.close(main)
    return process.wait(timeout=60), written.decode()


def test_a_terminal_shows_a_bar_per_table_then_a_line_per_finished_table(
    sample_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    status, written = in_terminal(tmp_path, "migrate", str(sample_db), pg_dsn)

    assert status == 0, written[-3000:]
    assert "\x1b[" in written  # drawn for a terminal
    lines = [line.strip() for line in re.split(r"[\r\n]", ANSI.sub("", written))]
    _, report = the_report(tmp_path / "reports")
    for table in report["tables"]:
        name, rows = table["table"], f"{table['loaded_rows']:,}"
        bar = re.compile(rf"{name} +━+ {rows} / {rows} rows\b")
        assert any(bar.match(line) for line in lines), name
        # at the start of a line: not torn into a bar drawn late (Dagster mirrors a
        # step's stdout through a tail process; the bars have a descriptor of their own)
        assert any(line.startswith(f"✓ {name}: {rows} rows in ") for line in lines), name
    assert " - INFO - " not in written  # the bars replace the console log
    assert "migration success" in written
    # The run's own row says what it does between and after the tables.
    assert any(re.match(r"run\b.* starting the Dagster run$", line) for line in lines)
    recording = r"run\b.* recording 9 tables' results in Dagster: 0 done$"
    assert any(re.match(recording, line) for line in lines)


def test_a_failed_verification_on_a_terminal_says_why_once_in_the_summary(
    sample_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    migrate_then_lose_a_row(tmp_path, sample_db, pg_dsn)

    status, written = in_terminal(tmp_path, "verify", str(sample_db), pg_dsn)

    assert status == 1
    text = ANSI.sub("", written)
    assert re.search(r"✗ workflow_runs: [\d,]+ source rows, 0 quarantined, 4/6 checks passed", text)
    assert "verification failure" in text
    # the reason is the summary's, once; Dagster's ERROR events stay in the event log
    assert " - ERROR - " not in text
    assert " ".join(text.split()).count("{'id': 7}: missing in target") == 1


LONG_NAME = "customer_subscription_billing_history_imported_from_the_legacy_crm_2019"


def sample_with_a_long_named_table(sample_db: Path, tmp_path: Path) -> Path:
    """The sample, plus a table with a very long name whose INTEGER column holds a text
    value: the column becomes text, and its declared_types check warns."""
    source = tmp_path / "legacy.sqlite"
    shutil.copy(sample_db, source)
    with closing(sqlite3.connect(source)) as conn, conn:
        conn.execute(f"CREATE TABLE {LONG_NAME} (id INTEGER PRIMARY KEY, amount INTEGER)")
        conn.executemany(
            f"INSERT INTO {LONG_NAME} VALUES (?, ?)",
            [(i, "n/a" if i == 3 else i * 100) for i in range(1, 1_235)],
        )
    return source


def test_an_80_column_terminal_shows_every_number_whole_and_a_warning_as_such(
    sample_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    source = sample_with_a_long_named_table(sample_db, tmp_path)

    status, written = in_terminal(tmp_path, "migrate", str(source), pg_dsn, size=(24, 80))

    assert status == 0, written[-3000:]
    text = ANSI.sub("", written)
    lines = re.split(r"\r?\n|\r", text)
    assert max(cell_len(line) for line in lines) <= 80
    _, report = the_report(tmp_path / "reports")
    assert report["status"] == "success"  # a WARN check never fails the run
    # The summary: from its first header line on, nothing cut, every count whole.
    summary = lines[next(i for i, line in enumerate(lines) if line.startswith("table ")) :]
    assert "…" not in "\n".join(summary)
    tokens = {token for line in summary for token in line.split()}
    for table in report["tables"]:
        assert {f"{table['source_rows']:,}", f"{table['loaded_rows']:,}"} <= tokens
    first = next(i for i, line in enumerate(summary) if line.startswith(LONG_NAME[:10]))
    folded = [summary[first].split()[0]]
    folded += [line.split()[0] for line in summary[first + 1 : first + 8] if len(line.split()) == 1]
    assert "".join(folded).startswith(LONG_NAME)  # folded onto more lines, not cut
    # The table with a WARN check: a warning when it finishes and in the summary.
    assert any(line.startswith(f"⚠ {LONG_NAME}: ") for line in lines)
    assert "warned: declared_types" in " ".join(text.split())
    assert not any(line.startswith(f"✓ {LONG_NAME}") for line in lines)
    assert "⚠ declared_types" in "\n".join(summary)


def test_a_failed_run_says_what_next_and_shows_no_row_as_loaded(
    pg_dsn: str, tmp_path: Path
) -> None:
    """Orphans are quarantined, which fails the run: nothing promoted."""
    source = tmp_path / "legacy.sqlite"
    with closing(sqlite3.connect(source)) as conn, conn:
        conn.executescript(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
            "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id));"
            "INSERT INTO parent VALUES (1);"
            "INSERT INTO child VALUES (1, 1), (2, 99), (3, 98);"
        )
    reports = tmp_path / "out"

    done = consoleai_etl(tmp_path, "migrate", str(source), pg_dsn, "--report-dir", str(reports))

    assert done.returncode == 1, done.stderr[-3000:]
    json_path, report = the_report(reports)
    assert report["status"] == "failure" and not report["promoted"]
    assert fetch(pg_dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    header = done.stdout.splitlines()[0].split()
    assert "staged" in header and "loaded" not in done.stdout
    assert summary_row(done.stdout, "child")[:4] == ["child", "3", "1", "2"]
    after = done.stdout.split("migration failure\n", 1)[1].splitlines()
    run_id = report["run_id"]
    assert after[-4:] == [
        "nothing promoted: the target is unchanged",
        "to accept the failed checks and quarantined rows and promote anyway, run again "
        "with --allow-divergence",
        "the 2 quarantined rows, with key, column and reason: table "
        f"consoleai_etl.quarantine, run_id '{run_id}'",
        f"report: {json_path.with_suffix('.html')}",
    ]
    [(quarantined,)] = fetch(
        pg_dsn, "SELECT count(*) FROM consoleai_etl.quarantine WHERE run_id = %s", (run_id,)
    )
    assert quarantined == 2  # where the summary says they are
    html = json_path.with_suffix(".html").read_text()
    assert "<span>staged rows</span>" in html and "loaded rows" not in html
    assert "allow_divergence: true in the run config" in html

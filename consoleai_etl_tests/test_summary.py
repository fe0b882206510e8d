"""The summary the command prints (``cli.summary``), rendered from a report file into a
terminal of 80 columns and into a file: big numbers and long names must fit whole, a
warning must read as one, and a run that promoted nothing must not claim rows loaded."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from consoleai_etl.cli.progress import finished_line
from consoleai_etl.cli.summary import print_summary
from consoleai_etl.core.run.report import (
    CONSISTENCY_JOB,
    MERGE_COUNTS,
    CheckReport,
    MigrationReport,
    TableReport,
    decide,
)
from consoleai_etl.demo.summary import main as demo_summary

LONG = "customer_subscription_billing_history_imported_from_the_legacy_crm_2019"
NAMES = ["users", LONG, "audit_events"]
RUN_ID = "4f1c2e9a-0b7d-4c55-9d1e-2a3b4c5d6e7f"


def big_report(*, merge: bool, promoted: bool, quarantined: int = 0) -> MigrationReport:
    """Three tables of millions of rows, one with a very long name; every table with a
    passed check, a WARN check that failed and, with ``quarantined`` rows, a failed one."""
    tables = []
    for i, name in enumerate(NAMES):
        checks = [
            CheckReport("row_count", not quarantined, "source = target + quarantined"),
            CheckReport("declared_types", False, "price: declared INTEGER, text", severity="warn"),
        ]
        table = TableReport(
            table=name, target_table=name, source_rows=2_000_000_000 + i,
            loaded_rows=1_999_999_000 + i, quarantined_rows=quarantined, seconds=12_345.67,
            rows_per_second=162_001.5, checks=checks,
        )  # fmt: skip
        if merge:
            table.merge = {name: 1_000_000_000 + 7 * j for j, name in enumerate(MERGE_COUNTS)}
        tables.append(table)
    report = MigrationReport(
        run_id=RUN_ID, job="legacy_migration_job", started_at="s", finished_at="f",
        dry_run=False, allow_divergence=False, mode="merge" if merge else "replace",
        source_path="legacy.sqlite", target="postgresql://x", target_schema="public",
        tables=tables, promoted=promoted,
    )  # fmt: skip
    decide(report)
    return report


def printed(report: MigrationReport, tmp_path: Path, *, width: int | None) -> str:
    """What the command prints for ``report``: on a terminal ``width`` columns wide, or
    (None) into a file."""
    path = tmp_path / f"migration-report-{report.run_id}.json"
    path.write_text(report.to_json())
    out = io.StringIO()
    terminal = width is not None
    console = Console(file=out, width=width or 80, force_terminal=terminal, color_system=None)
    print_summary(console, path)
    return out.getvalue()


def numbers(report: MigrationReport) -> set[str]:
    """Every count and total the summary shows, as it prints them."""
    totals = report.totals
    shown = {f"{totals[name]:,}" for name in ("source_rows", "loaded_rows", "quarantined_rows")}
    for t in report.tables:
        shown |= {f"{t.source_rows:,}", f"{t.loaded_rows:,}", f"{t.rows_per_second:,.0f}"}
        shown |= {f"{v:,}" for v in (t.merge or {}).values()}
    return shown - {"0"}


def folded_name(lines: list[str], start: str) -> str:
    """A table name as the first column shows it, folded: its first piece on the line that
    starts with ``start``, the rest on the lines below that hold nothing else."""
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    pieces = [lines[first].split()[0]]
    for line in lines[first + 1 :]:
        if len(line.split()) != 1:
            break
        pieces.append(line.split()[0])
    return "".join(pieces)


@pytest.mark.parametrize("merge", [False, True], ids=["replace", "merge"])
def test_on_an_80_column_terminal_every_number_is_whole_and_no_line_longer(
    tmp_path: Path, merge: bool
) -> None:
    report = big_report(merge=merge, promoted=True)

    text = printed(report, tmp_path, width=80)

    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= 80
    assert "…" not in text
    tokens = set(text.split())
    assert numbers(report) <= tokens, numbers(report) - tokens
    assert folded_name(lines, "customer_") == LONG
    # more tables than one, each led by the tables' names and ending with the totals
    headers = [line for line in lines if line.split()[:1] == ["table"]]
    assert len(headers) > 1
    assert sum(line.split()[:1] == ["total"] for line in lines) == len(headers)


def test_into_a_file_the_summary_is_one_table_as_wide_as_it_needs(tmp_path: Path) -> None:
    report = big_report(merge=True, promoted=True)

    lines = printed(report, tmp_path, width=None).splitlines()

    [header] = [line for line in lines if line.split()[:1] == ["table"]]
    assert "source rows" in header and "kept application changes" in header
    [row] = [line.split() for line in lines if line.split()[:1] == [LONG]]
    assert row[1:3] == ["2,000,000,001", "1,999,999,001"]


def test_a_warn_check_is_shown_as_a_warning_not_a_pass(tmp_path: Path) -> None:
    report = big_report(merge=False, promoted=True)
    assert report.status == "success"  # a WARN check never fails the run

    text = printed(report, tmp_path, width=80)

    assert text.count("⚠ declared_types") == len(NAMES)
    *_, total = [line.split() for line in text.splitlines() if line.split()[:1] == ["total"]]
    assert total[-4:] == ["3/6", "0,", "⚠", "3"]  # 3 of 6 passed; 0 failed, 3 warned
    line = finished_line(report.tables[0]).plain
    assert line.startswith("⚠ users: ") and line.endswith("warned: declared_types")
    assert not line.startswith("✓")


def test_a_failed_run_says_what_next_and_claims_no_row_loaded(tmp_path: Path) -> None:
    report = big_report(merge=False, promoted=False, quarantined=5)
    assert report.status == "failure"

    text = printed(report, tmp_path, width=80)

    header = next(line for line in text.splitlines() if line.split()[:1] == ["table"])
    assert "staged" in header
    assert not re.search(r"\bloaded\b", text)
    flat = " ".join(text.split())
    assert "nothing promoted: the target is unchanged" in flat
    assert "run again with --allow-divergence" in flat
    assert f"consoleai_etl.quarantine, run_id '{RUN_ID}'" in flat
    assert "the 15 quarantined rows" in flat
    path = tmp_path / f"migration-report-{RUN_ID}.md"  # folded on a terminal, not cut
    assert "".join(text.split()).endswith(f"report:{path}")
    # the Markdown, read in the Dagster UI too: in the run config's words, staged rows
    markdown = report.to_markdown()
    assert "- to accept the failed checks" in markdown and "allow_divergence: true" in markdown
    assert "| table | source rows | staged |" in markdown and " loaded" not in markdown


def test_a_verification_is_titled_so_and_offers_no_migration_option(tmp_path: Path) -> None:
    report = big_report(merge=False, promoted=False, quarantined=5)
    report.job = CONSISTENCY_JOB
    for table in report.tables:
        table.loaded_rows = table.seconds = table.rows_per_second = None
        table.check_seconds = 1.5

    text = printed(report, tmp_path, width=80)

    assert "verification failure" in text and "migration failure" not in text
    assert "--allow-divergence" not in text and "promoted" not in text
    assert report.to_markdown().startswith("# Verification report\n")
    assert "## Check time and source rows per table" in report.to_markdown()


def test_a_report_file_read_back_renders_the_same(tmp_path: Path) -> None:
    """The summary is made from the JSON file: what it reads back is what was written."""
    report = big_report(merge=True, promoted=True)
    path = tmp_path / "r.json"
    path.write_text(report.to_json())

    assert MigrationReport.from_dict(json.loads(path.read_text())).to_markdown() == (
        report.to_markdown()
    )


def test_make_demos_summary_names_the_run_configs_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make demo` runs the Dagster job: its user sets run config, not command-line flags."""
    report = big_report(merge=False, promoted=False, quarantined=5)
    path = tmp_path / "latest.json"
    path.write_text(report.to_json())

    assert demo_summary([str(path)]) == 0

    out = capsys.readouterr().out
    assert "migration FAILURE: 5,999,997,003 of 6,000,000,003 rows staged, 15 quarantined" in out
    assert "run again with allow_divergence: true in the run config" in out
    assert "--allow-divergence" not in out
    assert f"consoleai_etl.quarantine, run_id '{RUN_ID}'" in out

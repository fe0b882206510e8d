"""The HTML report people open: one self-contained file per run beside the JSON and Markdown
(real migrations into a fresh PostgreSQL database, the page read back with the standard
library's HTML parser), and the Markdown's compact chart."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from html import escape
from html.parser import HTMLParser
from pathlib import Path

from consoleai_etl.core.encode.convert import REFUSAL_CLASS
from consoleai_etl.core.run.report import CheckReport, MigrationReport, TableReport
from consoleai_etl.demo.sample import generate
from consoleai_etl_tests.helpers import fetch, materialization, run_job

BAR_WIDTH = 300  # a chart's longest bar, in SVG units


class Page(HTMLParser):
    """What a test reads of the report page: every element with its attributes, the body
    rows of each table by id (cell texts), and each chart's bars by id (tooltip, widths of
    the coloured bars)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.tables: dict[str | None, list[list[str]]] = {}
        self.bars: dict[str | None, list[tuple[str, list[float]]]] = {}
        self._rows: list[list[str]] | None = None
        self._row: list[str] | None = None
        self._text: list[str] | None = None  # the cell or bar title being read
        self._chart: list[tuple[str, list[float]]] | None = None
        self._bar: tuple[list[str], list[float]] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.elements.append((tag, found))
        if tag == "table":
            self._rows = self.tables.setdefault(found.get("id"), [])
        elif tag == "tbody" and self._rows is not None:
            self._row = []  # body rows only: the heading row comes before
        elif tag == "tr" and self._row is not None:
            self._row.clear()
        elif tag == "td" and self._row is not None:
            self._text = []
        elif tag == "svg":
            self._chart = self.bars.setdefault(found.get("id"), [])
        elif tag == "g" and found.get("class") == "bar":
            self._bar = ([], [])
        elif tag == "title" and self._bar is not None:
            self._text = self._bar[0]
        elif tag == "rect" and self._bar is not None and found.get("class") != "track":
            self._bar[1].append(float(found["width"] or 0))

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._text is not None:
            self._row.append("".join(self._text))
            self._text = None
        elif tag == "tr" and self._row and self._rows is not None:
            self._rows.append(self._row)
            self._row = []
        elif tag == "table":
            self._rows = self._row = None
        elif tag == "title":
            self._text = None
        elif tag == "g" and self._bar is not None and self._chart is not None:
            self._chart.append(("".join(self._bar[0]), self._bar[1]))
            self._bar = None
        elif tag == "svg":
            self._chart = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def read_report(reports: Path, run_id: str) -> tuple[str, Page]:
    """The run's HTML file, after checking ``latest.html`` is the same page."""
    page = (reports / f"migration-report-{run_id}.html").read_text(encoding="utf-8")
    assert (reports / "latest.html").read_text(encoding="utf-8") == page
    return page, Page(page)


def status(check: dict) -> str:
    return "passed" if check["passed"] else ("warned" if check["severity"] == "warn" else "failed")


def test_html_report_names_every_table_with_chart_quarantine_by_reason_and_checks(
    tmp_path: Path, pg_dsn: str
) -> None:
    source = tmp_path / "legacy.sqlite"
    generate(source, scale=0.02, anomalies=True)
    reports = tmp_path / "reports"
    result, report = run_job(source, pg_dsn, reports, allow_divergence=True)
    html, page = read_report(reports, result.run_id)
    metadata = materialization(result, "migration_report").metadata
    assert metadata["report_html"].path == str(reports / f"migration-report-{result.run_id}.html")

    # Self-contained: nothing linked or fetched, no script, not even an address.
    assert [(tag, a) for tag, a in page.elements if {"src", "href", "srcset"} & a.keys()] == []
    assert not {tag for tag, _a in page.elements} & {"script", "link", "img", "iframe", "object"}
    assert "http:" not in html and "https:" not in html

    tables = [t["table"] for t in report["tables"]]
    assert [row[0] for row in page.tables["tables"]] == tables
    # The chart: one bar per table, seconds and loaded rows, each scaled to the largest.
    chart = page.bars["chart-tables"]
    assert [title.split(":")[0] for title, _widths in chart] == tables
    top_seconds = max(t["seconds"] for t in report["tables"])
    top_rows = max(t["loaded_rows"] for t in report["tables"])
    for t, (title, widths) in zip(report["tables"], chart, strict=True):
        assert f"{t['rows_per_second']:,.0f} rows/s" in title
        assert widths == [
            round(BAR_WIDTH * t["seconds"] / top_seconds, 1),
            round(BAR_WIDTH * t["loaded_rows"] / top_rows, 1),
        ]

    # Every quarantined row counted per table, column and reason class, as the SQL says.
    quarantined = fetch(
        pg_dsn,
        "SELECT source_table, column_name, reason FROM consoleai_etl.quarantine WHERE run_id = %s",
        (result.run_id,),
    )
    pattern, replacement = REFUSAL_CLASS
    expected = Counter(
        (table, column or "—", re.sub(pattern, replacement, reason, flags=re.S))
        for table, column, reason in quarantined
    )
    shown = {(t, c, r): int(n.replace(",", "")) for t, c, r, n in page.tables["quarantine-reasons"]}
    assert shown == dict(expected)
    assert sum(shown.values()) == report["totals"]["quarantined_rows"] == len(quarantined) > 0
    refused = [reason for _t, _c, reason in quarantined if " cannot become " in reason]
    assert refused and not set(refused) & {reason for _t, _c, reason in shown}  # classes only
    assert len(page.bars["chart-quarantine"]) == len(shown)
    assert sum(len(t["quarantine_reasons"]) for t in report["tables"]) == len(shown)  # JSON too
    markdown = (reports / "latest.md").read_text(encoding="utf-8")
    for (table, column, reason), rows in shown.items():
        assert f"| {table} | {column} | {reason} | {rows:,} |" in markdown

    # One row per check, with its severity and result.
    checks = [
        (t["table"], c["name"], c["severity"], status(c))
        for t in report["tables"]
        for c in t["checks"]
    ]
    assert [tuple(row[:4]) for row in page.tables["checks"]] == checks
    assert {"passed", "warned"} <= {result for *_, result in checks}

    # The type plan: each table's columns with their target types.
    for i, t in enumerate(report["tables"]):
        plan = page.tables[f"plan-{i}"]
        assert [(row[0], row[3]) for row in plan] == [
            (c["name"], c["pg_type"]) for c in t["columns"]
        ]


def test_html_report_escapes_markup_and_counts_refusals_by_class(
    tmp_path: Path, pg_dsn: str
) -> None:
    """A table named with markup, and refused values whose text looks like a reason (text
    with a NUL byte, which PostgreSQL refuses): escaped everywhere, counted by class."""
    name = '<b>&"x'
    source = tmp_path / "legacy.sqlite"
    with sqlite3.connect(source) as conn:
        conn.executescript(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
            'CREATE TABLE "<b>&""x" '
            "(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id), note TEXT);"
            "INSERT INTO parent VALUES (1);"
        )
        conn.executemany(
            'INSERT INTO "<b>&""x" VALUES (?, ?, ?)',
            [
                (1, 1, "fine"),
                (2, 99, "fine"),
                (3, 1, "<i>a cannot become bigint: b\x00</i>"),
                (4, 1, "c cannot become d\x00"),
            ],
        )
    reports = tmp_path / "reports"
    result, _report = run_job(source, pg_dsn, reports, allow_divergence=True)
    html, page = read_report(reports, result.run_id)

    assert name not in html and escape(name) in html and "<i>" not in html
    assert not {"b", "i"} & {tag for tag, _a in page.elements}  # no text made an element
    assert [row[0] for row in page.tables["tables"]] == ["parent", name]
    assert [title.split(":")[0] for title, _w in page.bars["chart-tables"]] == ["parent", name]
    assert page.tables["quarantine-reasons"] == [
        [name, "note", "cannot become text", "2"],
        [name, "parent_id", "orphan: no parent row with (id) = this row's (parent_id)", "1"],
    ]
    sample = {row[3] for row in page.tables["quarantine-sample"]}
    assert (
        "'<i>a cannot become bigint: b\\x00</i>' cannot become text: contains a NUL "
        "byte, which PostgreSQL text cannot hold" in sample
    )  # the full reason, as text
    assert {row[0] for row in page.tables["checks"]} == {"parent", name}


def chart_lines(
    markdown: str, heading: str = "## Load time and staged rows per table"
) -> list[str]:
    """The lines of the Markdown's chart (its code block), under ``heading`` (a run that
    promoted nothing staged its rows, loaded none into the target)."""
    after = markdown.split(f"{heading}\n\n", 1)[1]
    fence, rest = after.split("\n", 1)
    return rest.split(f"\n{fence}\n", 1)[0].splitlines()


def bars(line: str) -> list[str]:
    return re.findall("[█▏▎▍▌▋▊▉]+", line)


def test_markdown_chart_draws_each_tables_time_and_rows_as_text_bars() -> None:
    def table(name: str, seconds: float | None, rows: int | None) -> TableReport:
        return TableReport(
            table=name, target_table=name, seconds=seconds, loaded_rows=rows,
            checks=[CheckReport("row_count", True, "equal")],
        )  # fmt: skip

    report = MigrationReport(
        run_id="r1", job="legacy_migration_job", started_at="s", finished_at="f",
        dry_run=False, allow_divergence=False, mode="replace", source_path="a.sqlite",
        target="postgresql://x", target_schema="public",
        tables=[
            table("big", 2.0, 1000), table("has ``` ticks", 1.0, 250), table("broken", None, None)
        ],
    )  # fmt: skip
    lines = chart_lines(report.to_markdown())
    assert [line.split()[0] for line in lines] == ["big", "has", "broken"]
    assert bars(lines[0]) == ["█" * 20, "█" * 20]  # the largest: full width
    assert bars(lines[1]) == ["█" * 10, "█" * 5]  # half the time, a quarter of the rows
    assert bars(lines[2]) == [] and "—" in lines[2]
    # The fence is longer than any run of backticks in a name, so the block stays closed.
    assert "has ``` ticks" in lines[1]

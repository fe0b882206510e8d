"""The migration report as one self-contained HTML page, the version people open.

One file that works from a file share or an e-mail attachment: inline CSS and inline SVG
charts, no JavaScript, no font, image or stylesheet fetched from anywhere. Every text from
the run (table and column names, reasons, paths) is escaped, since a SQLite table may be
named anything, ``<`` and ``&`` included.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from consoleai_etl.core.run.chart import fractions
from consoleai_etl.core.run.report import (
    FAILURE,
    MERGE_COUNTS,
    REPORTS_ALLOW_DIVERGENCE,
    SUCCESS,
    CheckReport,
    MigrationReport,
    conflict_problems,
    next_steps,
    number,
)

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1f2328; background: #f6f8fa; margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 8px; }
h2 { font-size: 19px; margin: 16px 0 10px; padding-bottom: 6px; border-bottom: 1px solid #d0d7de; }
section, header { background: #fff; border: 1px solid #d0d7de; border-radius: 8px;
  padding: 4px 20px 16px; margin-top: 18px; }
header { padding-top: 18px; border-top: 6px solid var(--tone); }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; font-weight: 600;
  font-size: 13px; color: #fff; background: var(--tone); vertical-align: middle; }
.good { --tone: #1a7f37; } .warn { --tone: #bf8700; } .bad { --tone: #cf222e; }
.dry { --tone: #6639ba; }
ul.reasons { margin: 10px 0; padding-left: 20px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; margin: 12px 0; }
dl.facts dt { color: #59636e; } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.totals { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 12px; }
.total { border: 1px solid #d0d7de; border-radius: 6px; padding: 6px 14px; min-width: 96px; }
.total strong { display: block; font-size: 20px; } .total span { color: #59636e; font-size: 12px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #d8dee4;
  vertical-align: top; overflow-wrap: break-word; }
th { background: #f6f8fa; font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
#checks td:nth-child(-n+4) { white-space: nowrap; }
tr.failed td { background: #ffebe9; } tr.warned td { background: #fff8c5; }
.passed .result { color: #1a7f37; } .failed .result { color: #cf222e; font-weight: 600; }
.warned .result { color: #9a6700; font-weight: 600; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: #eff2f5; padding: 1px 4px; border-radius: 4px; }
details { border: 1px solid #d8dee4; border-radius: 6px; margin: 8px 0; padding: 4px 12px; }
summary { cursor: pointer; font-weight: 600; padding: 4px 0; }
summary span { color: #59636e; font-weight: 400; }
.note { color: #59636e; font-size: 13px; }
svg { display: block; max-width: 100%; height: auto; margin: 8px 0; }
svg text { font: 12px system-ui, sans-serif; fill: #1f2328; }
svg text.value { fill: #59636e; } svg text.heading { font-weight: 600; }
svg rect.track { fill: #f0f3f6; }
"""

_TONES = {SUCCESS: "good", FAILURE: "bad"}  # any other status: a success with something to read
# The charts' geometry, in SVG units (the page scales the SVG down on narrow screens).
_BAR_WIDTH, _VALUE_WIDTH, _ROW, _TOP = 300, 110, 24, 28
_CHAR_WIDTH = 7  # about, for a 12px label: longer labels are cut (the tooltip has them whole)


@dataclass(frozen=True)
class _Series:
    """One measure of a bar chart: its heading, values, how a value is printed, its colour."""

    heading: str
    values: Sequence[float | None]
    show: Callable[[float | None], str]
    colour: str


def render_html(report: MigrationReport) -> str:
    """The whole page: verdict, charts, quarantine, checks, type plan, merge, views, warnings."""
    title = f"{report.what.capitalize()} report {report.run_id}" + (
        " (DRY RUN)" if report.dry_run else ""
    )
    body = "".join(
        [
            _header(report),
            _tables_section(report),
            _skipped_section(report),
            _quarantine_section(report),
            _checks_section(report),
            _plan_section(report),
            _merge_section(report),
            _views_section(report),
            _warnings_section(report),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
    )


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _seconds(value: float | None) -> str:
    return f"{number(value, '.2f')} s"


def _tone(report: MigrationReport) -> str:
    return _TONES.get(report.status, "warn")


def _header(report: MigrationReport) -> str:
    totals = report.totals
    dry = ' <span class="badge dry">DRY RUN — target untouched</span>' if report.dry_run else ""
    reasons = "".join(f"<li>{_e(r)}</li>" for r in report.reasons)
    steps = "".join(f"<li>{_e(s)}</li>" for s in next_steps(report, REPORTS_ALLOW_DIVERGENCE))
    facts = [
        ("run", f"<code>{_e(report.run_id)}</code> ({_e(report.job)})"),
        ("time", f"{_e(report.started_at)} → {_e(report.finished_at)}"),
        ("source", f"<code>{_e(report.source_path)}</code>"),
        (
            "target",
            f"<code>{_e(report.target)}</code> schema <code>{_e(report.target_schema)}</code>",
        ),
        ("mode", _e(report.mode)),
        ("dry run", "yes" if report.dry_run else "no"),
        ("promoted", "yes" if report.promoted else "no"),
    ]
    if report.source_snapshot:
        facts.append(("source read", _e(report.source_snapshot)))
    if report.idempotency is not None:
        facts.append(("previous run", _e(_idempotency(report.idempotency))))
    loaded = any(t.loaded_rows is not None for t in report.tables)
    numbers = [
        (totals["tables"], "tables"),
        (totals["source_rows"], "source rows"),
        *([(totals["loaded_rows"], f"{report.loaded_as} rows")] if loaded else []),
        (totals["quarantined_rows"], "quarantined rows"),
        (totals["checks"], "checks"),
        (totals["failed_checks"], "failed checks"),
        (totals["warned_checks"], "warned checks"),
    ]
    if totals["skipped_tables"]:
        numbers.append((totals["skipped_tables"], "skipped tables"))
    return (
        f'<header class="{_tone(report)}">\n<h1>{report.what.capitalize()} report{dry}</h1>\n'
        f'<p><span class="badge status">{_e(report.status.upper())}</span></p>\n'
        f'<ul class="reasons">{reasons}</ul>\n'
        + (f'<p>Next:</p>\n<ul id="next-steps">{steps}</ul>\n' if steps else "")
        + '<dl class="facts">'
        + "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
        + '</dl>\n<div class="totals">'
        + "".join(
            f'<div class="total"><strong>{n:,}</strong><span>{label}</span></div>'
            for n, label in numbers
        )
        + "</div>\n</header>\n"
    )


def _idempotency(idempotency: dict[str, object]) -> str:
    previous = idempotency["previous_run"]
    if idempotency["identical"]:
        return f"identical to {previous}: same rows and checksum in every table"
    return f"differs from {previous}: " + "; ".join(idempotency["differences"])


def _bar_chart(
    chart_id: str,
    labels: Sequence[str],
    titles: Sequence[str],
    *series: _Series,
    label_width: int = 230,
) -> str:
    """Horizontal bars, one row per label (a ``<g class="bar">`` each), one column of bars per
    series, each scaled to its series' largest value; ``titles`` are the rows' tooltips."""
    column, chars = _BAR_WIDTH + _VALUE_WIDTH, label_width // _CHAR_WIDTH
    width = label_width + column * len(series)
    height = _TOP + _ROW * len(labels) + 4
    parts = [
        f'<svg id="{chart_id}" class="chart" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img">'
    ]
    parts += [
        f'<text class="heading" x="{label_width + i * column}" y="16">{_e(s.heading)}</text>'
        for i, s in enumerate(series)
    ]
    scaled = [fractions(s.values) for s in series]
    for row, (label, title) in enumerate(zip(labels, titles, strict=True)):
        y = _TOP + row * _ROW
        short = label if len(label) <= chars else label[: chars - 1] + "…"
        parts.append(
            f'<g class="bar"><title>{_e(title)}</title><text x="0" y="{y + 15}">{_e(short)}</text>'
        )
        for i, s in enumerate(series):
            x = label_width + i * column
            length = round(scaled[i][row] * _BAR_WIDTH, 1)
            parts.append(
                f'<rect class="track" x="{x}" y="{y + 3}" width="{_BAR_WIDTH}" height="16" rx="3"/>'
                f'<rect x="{x}" y="{y + 3}" width="{length}" height="16" rx="3" '
                f'fill="{s.colour}"/>'
                f'<text class="value" x="{x + _BAR_WIDTH + 6}" y="{y + 15}">'
                f"{_e(s.show(s.values[row]))}</text>"
            )
        parts.append("</g>")
    return "".join(parts) + "</svg>\n"


def _table(
    table_id: str, headings: Sequence[str], rows: Sequence[str], numeric: Sequence[str] = ()
) -> str:
    """A table of already rendered ``<tr>`` rows; ``numeric`` headings are right-aligned."""
    head = "".join(
        f'<th class="num">{_e(h)}</th>' if h in numeric else f"<th>{_e(h)}</th>" for h in headings
    )
    return (
        f'<table id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>\n"
    )


def _cells(*cells: object, numeric: Sequence[int] = ()) -> str:
    """A row of escaped cells; the ``numeric`` positions right-aligned."""
    return "".join(
        f'<td class="num">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
        for i, c in enumerate(cells)
    )


def _tables_section(report: MigrationReport) -> str:
    """Each table's time and rows (``chart_series``) as bars, then its counts and times."""
    tables = report.tables
    (timed, seconds), (counted, rows) = report.chart_series()
    loaded = report.loaded_as
    if report.what == "verification":
        titles = [
            f"{t.table}: checked in {number(t.check_seconds, '.3f')} s, "
            f"{number(t.source_rows)} source rows"
            for t in tables
        ]
        note = "Check time is every check of the table, run against the target."
    else:
        titles = [
            f"{t.table}: {number(t.seconds, '.3f')} s, {number(t.loaded_rows)} rows {loaded} "
            f"of {number(t.source_rows)}, {number(t.rows_per_second, ',.0f')} rows/s"
            for t in tables
        ]
        note = (
            "Load time is profile + load + keys, indexes and foreign keys; hover a bar for its "
            "rows per second."
        )
    chart = _bar_chart(
        "chart-tables",
        [t.table for t in tables],
        titles,
        _Series(timed, seconds, _seconds, "#0969da"),
        _Series(counted, rows, number, "#1a7f37"),
    )
    rows_html = [
        f'<tr class="{"failed" if t.error else "passed"}">'
        + _cells(
            t.table,
            number(t.source_rows),
            number(t.loaded_rows),
            f"{t.quarantined_rows:,}",
            number(t.seconds, ".2f"),
            number(t.rows_per_second, ",.0f"),
            number(t.check_seconds, ".2f"),
            numeric=range(1, 7),
        )
        + "</tr>"
        for t in tables
    ]
    headings = ("table", "source rows", loaded, "quarantined", "load s", "rows/s", "check s")
    heading = f"{timed.split()[0]} time and {counted}"
    return (
        f'<section>\n<h2>Tables: {heading}</h2>\n<p class="note">{note}</p>\n'
        + chart
        + _table("tables", headings, rows_html, numeric=headings[1:])
        + "</section>\n"
    )


def _skipped_section(report: MigrationReport) -> str:
    """The source tables the run left out, their rows and why."""
    if not report.skipped_tables:
        return ""
    rows = [
        '<tr class="warned">'
        + _cells(s.table, f"{s.source_rows:,}", s.reason, numeric=(1,))
        + "</tr>"
        for s in report.skipped_tables
    ]
    headings = ("table", "source rows", "why")
    return (
        "<section>\n<h2>Skipped tables</h2>\n"
        '<p class="note">Left out of this run: neither loaded nor checked; their rows are not '
        "in the target.</p>\n"
        + _table("skipped", headings, rows, numeric=("source rows",))
        + "</section>\n"
    )


def _quarantine_section(report: MigrationReport) -> str:
    counted = [(t.table, q) for t in report.tables for q in t.quarantine_reasons]
    if not report.totals["quarantined_rows"]:
        return "<section>\n<h2>Quarantine</h2>\n<p>No row quarantined.</p>\n</section>\n"
    rows = [
        '<tr class="reason">'
        + _cells(table, q["column"] or "—", q["reason"], f"{q['rows']:,}", numeric=(3,))
        + "</tr>"
        for table, q in counted
    ]
    labels = [f"{table} · {q['column'] or '—'} · {q['reason']}" for table, q in counted]
    chart = _bar_chart(
        "chart-quarantine",
        labels,
        [f"{label}: {q['rows']:,} rows" for label, (_t, q) in zip(labels, counted, strict=True)],
        _Series("quarantined rows", [int(q["rows"]) for _t, q in counted], number, "#cf222e"),
        label_width=430,
    )
    sample = [
        "<tr>"
        + _cells(t.table, json.dumps(q["key"], ensure_ascii=False), q["column"] or "—", q["reason"])
        + "</tr>"
        for t in report.tables
        for q in t.quarantine_sample
    ]
    return (
        "<section>\n<h2>Quarantine by table and reason</h2>\n"
        '<p class="note">Every quarantined row, counted per table, column and reason. A refused '
        "value's reason names the value, so it is counted by its class "
        "(<code>cannot become &lt;type&gt;</code>); the first rows below show the full reasons. "
        f"All rows are in <code>consoleai_etl.quarantine</code> (run_id <code>{_e(report.run_id)}"
        "</code>).</p>\n"
        + chart
        + _table("quarantine-reasons", ("table", "column", "reason", "rows"), rows, ("rows",))
        + "<h3>First quarantined rows</h3>\n"
        + _table("quarantine-sample", ("table", "key", "column", "reason"), sample)
        + "</section>\n"
    )


def _check_result(check: CheckReport) -> str:
    return "passed" if check.passed else ("warned" if check.warned else "failed")


def _checks_section(report: MigrationReport) -> str:
    rows = [
        f'<tr class="check {_check_result(c)}">'
        + f"<td>{_e(t.table)}</td><td>{_e(c.name)}</td><td>{_e(c.severity)}</td>"
        + f'<td class="result">{_check_result(c)}</td><td>{_e(c.description)}</td></tr>'
        for t in report.tables
        for c in t.checks
    ]
    rows += [
        f'<tr class="check failed"><td>{_e(t.table)}</td><td>load</td><td>error</td>'
        f'<td class="result">failed</td><td>{_e(t.error)}</td></tr>'
        for t in report.tables
        if t.error
    ]
    return (
        "<section>\n<h2>Checks</h2>\n"
        + _table("checks", ("table", "check", "severity", "result", "description"), rows)
        + "</section>\n"
    )


def _plan_section(report: MigrationReport) -> str:
    """Per table, the type each column got and why (``<details>``: open a table to read it)."""
    parts = ["<section>\n<h2>Type plan</h2>\n"]
    for i, t in enumerate(report.tables):
        widened = sum(bool(c.get("widened")) for c in t.columns)
        rows = [
            f'<tr class="{"warned" if c.get("widened") else "passed"}">'
            + _cells(
                c["name"],
                c["target_name"] if c["target_name"] != c["name"] else "",
                c["declared_type"] or "—",
                c["pg_type"],
                "no" if c["not_null"] else "yes",
                c.get("default") or "",
                ("widened; " if c.get("widened") else "") + str(c.get("reason") or ""),
            )
            + "</tr>"
            for c in t.columns
        ]
        headings = (
            "column", "target name", "declared type", "target type", "nullable", "default", "notes"
        )  # fmt: skip
        parts.append(
            f"<details><summary>{_e(t.table)} <span>"
            + (f"→ {_e(t.target_table)}, " if t.target_table != t.table else "")
            + f"{len(t.columns)} columns"
            + (f", {widened} widened" if widened else "")
            + "</span></summary>\n"
            + _table(f"plan-{i}", headings, rows)
            + "</details>\n"
        )
    return "".join(parts) + "</section>\n"


def _merge_section(report: MigrationReport) -> str:
    merged = [t for t in report.tables if t.merge is not None]
    if not merged:
        return ""
    rows = []
    counted = range(1, len(MERGE_COUNTS) + 1)
    for t in merged:
        m = t.merge or {}
        moved = ", ".join(f"{c} → {v}" for c, v in dict(m.get("sequences_moved") or {}).items())
        rows.append(
            "<tr>"
            + _cells(
                t.table,
                *(number(m[name]) for name in MERGE_COUNTS),  # type: ignore[arg-type]
                moved or "—",
                numeric=counted,
            )
            + "</tr>"
        )
    headings = ("table", *(name.replace("_", " ") for name in MERGE_COUNTS), "sequences moved")
    verb = "would write (dry run, rolled back)" if report.dry_run else "wrote"
    conflicts = "".join(f"<li>{_e(problem)}</li>" for problem in conflict_problems(report))
    return (
        f'<section>\n<h2>Merge</h2>\n<p class="note">What the merge {verb} into each existing '
        "target table; rows the application changed since the last merge are kept.</p>\n"
        + _table("merge", headings, rows, numeric=headings[1 : len(MERGE_COUNTS) + 1])
        + (f'<ul id="merge-conflicts">{conflicts}</ul>\n' if conflicts else "")
        + "</section>\n"
    )


def _views_section(report: MigrationReport) -> str:
    if not report.views:
        return ""
    rows = [
        f'<tr class="{"passed" if v["created"] else "failed"}">'
        + _cells(
            v["name"],
            "yes" if v["created"] else "no",
            number(v["sqlite_rows"]),
            number(v["pg_rows"]),
            v["pg_checksum"] or "—",
            v["reason"] or "same rows as in SQLite",
            numeric=(2, 3),
        )
        + "</tr>"
        for v in report.views
    ]
    headings = ("view", "created", "SQLite rows", "PostgreSQL rows", "checksum", "reason")
    return (
        "<section>\n<h2>Views</h2>\n"
        + _table("views", headings, rows, numeric=("SQLite rows", "PostgreSQL rows"))
        + "</section>\n"
    )


def _warnings_section(report: MigrationReport) -> str:
    warnings = list(report.warnings)
    warnings += [f"{t.table}: {w}" for t in report.tables for w in t.warnings]
    warnings += [f"{o['kind']} {o['name']} not migrated" for o in report.schema_objects_skipped]
    if not warnings:
        return ""
    items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
    return f"<section>\n<h2>Warnings</h2>\n<ul>{items}</ul>\n</section>\n"

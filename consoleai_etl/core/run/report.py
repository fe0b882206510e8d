"""The migration report: one model, rendered as JSON and Markdown, with the run's verdict."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from consoleai_etl.core.run.chart import fractions, text_bar

SUCCESS = "success"
SUCCESS_WITH_QUARANTINE = "success_with_quarantine"
SUCCESS_WITH_DIVERGENCE = "success_with_divergence"
# tables proven, but some views not created, a table skipped or merge conflicts settled
SUCCESS_WITH_WARNINGS = "success_with_warnings"
FAILURE = "failure"
ALL_CLEAR = "all checks passed, no row quarantined"
# Check severities: a failed ERROR check is loss or divergence and fails the run (unless
# ``allow_divergence``); a failed WARN check is a fact to read, listed, never blocking.
ERROR = "error"
WARN = "warn"
# The job that loads, checks and promotes every table (``defs.table_assets``).
MIGRATION_JOB = "legacy_migration_job"
# The job that verifies the target against the source (``defs.consistency_job``): it loads
# nothing, so its reports say "verification"; any other job's say "migration".
CONSISTENCY_JOB = "consistency_check_job"
# How the Markdown and HTML reports, read by users of the run config and of the command line
# alike, name the option that promotes a divergent run (``next_steps``).
REPORTS_ALLOW_DIVERGENCE = (
    "allow_divergence: true in the run config (--allow-divergence on the command line)"
)
# Merge mode's counts per table, in the order every rendering shows them (``TableReport.merge``).
MERGE_COUNTS = (
    "inserted",
    "updated",
    "unchanged",
    "extra_in_target",
    "kept_application_changes",
    "conflicts",
)


@dataclass
class CheckReport:
    name: str
    passed: bool
    description: str
    metadata: dict[str, object] = field(default_factory=dict)
    severity: str = ERROR

    @property
    def failed(self) -> bool:
        """Failed with ERROR severity: what the verdict counts."""
        return not self.passed and self.severity == ERROR

    @property
    def warned(self) -> bool:
        """Failed with WARN severity: listed as a warning, never fails the run."""
        return not self.passed and self.severity == WARN


SHOWN_DIVERGENCES = 3  # divergent keys a check's one-line description names


def divergences(entries: list[dict[str, object]]) -> str:
    """The first few of a check's divergent keys on one line: each key with, per column
    that differs, ``source -> target`` (or how the row differs: missing in target...).
    Entries are the checksum locator's (replace mode) or ``merge.differences``'s."""
    return "; ".join(_divergence(entry) for entry in entries[:SHOWN_DIVERGENCES])


def _divergence(entry: dict[str, object]) -> str:
    where = entry.get("key", entry.get("row_hash"))
    columns = entry.get("columns")
    if isinstance(columns, dict):
        changes = ", ".join(
            f"{name} {v['source']!r} -> {v['target']!r}" for name, v in columns.items()
        )
        return f"{where}: {changes}"
    return f"{where}: {entry['divergence']}"


@dataclass
class TableReport:
    table: str
    target_table: str
    source_rows: int | None = None
    loaded_rows: int | None = None
    quarantined_rows: int = 0
    seconds: float | None = None  # profile + load + keys/indexes/FKs
    rows_per_second: float | None = None
    check_seconds: float | None = None  # all checks of the table
    checksum_seconds: float | None = None  # hashing the load stream (inside ``seconds``)
    keys_seconds: float | None = None  # keys, indexes, out-of-range rows (inside ``seconds``)
    foreign_keys_seconds: float | None = None  # validating them (inside ``seconds``)
    load_window: list[float] | None = None  # [start, end] of the load, Unix seconds
    checks: list[CheckReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    columns: list[dict[str, object]] = field(default_factory=list)  # the type plan
    quarantine_sample: list[dict[str, object]] = field(default_factory=list)
    # every quarantined row counted per column and reason class: {column, reason, rows}
    quarantine_reasons: list[dict[str, object]] = field(default_factory=list)
    checksum: str | None = None  # content checksum of the loaded rows (hex)
    # merge mode: MERGE_COUNTS, and sequences_moved; with conflicts, conflict_keys (the
    # first ones) and on_conflict (how they were settled)
    merge: dict[str, object] | None = None

    @classmethod
    def from_dict(cls, data: dict) -> TableReport:
        checks = [CheckReport(**c) for c in data.get("checks", [])]
        return cls(**{**data, "checks": checks})


@dataclass
class SkippedTable:
    """A source table the run left out (``core.plan.skip``): declared, never a silent loss."""

    table: str
    source_rows: int
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.table}: skipped, {self.source_rows:,} source rows not migrated ({self.reason})"
        )


@dataclass
class MigrationReport:
    run_id: str
    job: str
    started_at: str
    finished_at: str
    dry_run: bool
    allow_divergence: bool
    mode: str
    source_path: str
    target: str  # redacted DSN
    target_schema: str
    tables: list[TableReport]
    status: str = FAILURE
    reasons: list[str] = field(default_factory=list)
    promoted: bool = False
    warnings: list[str] = field(default_factory=list)
    views: list[dict[str, object]] = field(default_factory=list)
    idempotency: dict[str, object] | None = None
    schema_objects_skipped: list[dict[str, str]] = field(default_factory=list)
    skipped_tables: list[SkippedTable] = field(default_factory=list)  # not loaded nor checked
    source_snapshot: str | None = None  # how every table was read as of one moment
    recorded: bool = False  # in consoleai_etl.runs, where the report step reads it
    # Unix time every table was staged and checked, before the verdict and the promotion:
    # with the tables' load windows and Dagster's event log, `make bench` splits the job's
    # wall time into its phases.
    staged_at: float | None = None

    @property
    def totals(self) -> dict[str, int]:
        return {
            "tables": len(self.tables),
            "source_rows": sum(t.source_rows or 0 for t in self.tables),
            "loaded_rows": sum(t.loaded_rows or 0 for t in self.tables),
            "quarantined_rows": sum(t.quarantined_rows for t in self.tables),
            "checks": sum(len(t.checks) for t in self.tables),
            "failed_checks": sum(c.failed for t in self.tables for c in t.checks),
            "warned_checks": sum(c.warned for t in self.tables for c in t.checks),
            "skipped_tables": len(self.skipped_tables),
        }

    @property
    def what(self) -> str:
        """What the run was, in every rendering's words: a verification or a migration."""
        return "verification" if self.job == CONSISTENCY_JOB else "migration"

    @property
    def loaded_as(self) -> str:
        """What the tables' ``loaded_rows`` are, in every rendering's words: rows loaded
        into the target only when the run promoted them; else (a dry run, a failed run, a
        verification in merge mode, which stages the source to compare) rows that went no
        further than staging."""
        return "loaded" if self.promoted else "staged"

    def chart_series(self) -> tuple[tuple[str, list[float | None]], tuple[str, list[float | None]]]:
        """What the charts draw per table, each series named: a migration's load seconds
        and the rows it loaded (or staged), a verification's check seconds and the source
        rows it checked."""
        if self.what == "verification":
            return (
                ("check seconds", [t.check_seconds for t in self.tables]),
                ("source rows", [t.source_rows for t in self.tables]),
            )
        return (
            ("load seconds", [t.seconds for t in self.tables]),
            (f"{self.loaded_as} rows", [t.loaded_rows for t in self.tables]),
        )

    @classmethod
    def from_dict(cls, data: dict) -> MigrationReport:
        """The report as recorded in ``consoleai_etl.runs`` (``to_dict``), read back."""
        fields = {k: v for k, v in data.items() if k != "totals"}
        return cls(
            **{
                **fields,
                "tables": [TableReport.from_dict(t) for t in data["tables"]],
                "skipped_tables": [SkippedTable(**s) for s in data.get("skipped_tables", [])],
            }
        )

    def fail(self, reason: str) -> None:
        """Turn the verdict into a failure for a reason found after ``decide``."""
        self.status = FAILURE
        self.reasons = [r for r in self.reasons if r != ALL_CLEAR] + [reason]

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "totals": self.totals}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    def to_markdown(self) -> str:
        title = f"{self.what.capitalize()} report" + (" (DRY RUN)" if self.dry_run else "")
        lines = [
            f"# {title}",
            "",
            f"**Status: {self.status.upper()}**"
            + (" — DRY RUN, target untouched" if self.dry_run else ""),
            "",
        ]
        lines += [f"- {_md(reason)}" for reason in self.reasons]
        if steps := next_steps(self, REPORTS_ALLOW_DIVERGENCE):
            lines += ["", "Next:", "", *(f"- {_md(step)}" for step in steps)]
        totals = self.totals
        loaded = any(t.loaded_rows is not None for t in self.tables)
        lines += [
            "",
            f"- run `{self.run_id}` ({self.job}), {self.started_at} → {self.finished_at}",
            f"- source {_code(self.source_path)} → target {_code(self.target)} schema "
            f"{_code(self.target_schema)} (mode {self.mode}); "
            f"promoted: {'yes' if self.promoted else 'no'}",
            *([f"- source read: {self.source_snapshot}"] if self.source_snapshot else []),
            f"- {totals['tables']} tables, {totals['source_rows']:,} source rows, "
            + (f"{totals['loaded_rows']:,} {self.loaded_as}, " if loaded else "")
            + f"{totals['quarantined_rows']:,} quarantined, "
            f"{totals['failed_checks']} of {totals['checks']} checks failed"
            + (f", {totals['warned_checks']} warned" if totals["warned_checks"] else "")
            + (f"; {totals['skipped_tables']} skipped" if totals["skipped_tables"] else ""),
            *self._idempotency_lines(),
            "",
            f"| table | source rows | {self.loaded_as} | quarantined | load s | rows/s | check s "
            "| checks |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for t in self.tables:
            checks = ", ".join(f"{c.name} {_mark(c)}" for c in t.checks)
            lines.append(
                f"| {_md(t.table)} | {number(t.source_rows)} | {number(t.loaded_rows)} | "
                f"{t.quarantined_rows:,} | {number(t.seconds, '.2f')} | "
                f"{number(t.rows_per_second, ',.0f')} | {number(t.check_seconds, '.2f')} | "
                f"{checks or '—'} |"
            )
        lines += self._skipped_lines()
        lines += self._chart_lines()
        lines += self._merge_lines()
        problems = [
            f"- **{_md(t.table)}** {c.name}: {_md(c.description)}"
            for t in self.tables
            for c in t.checks
            if c.failed
        ] + [f"- **{_md(t.table)}** load failed: {_md(t.error)}" for t in self.tables if t.error]
        if problems:
            lines += ["", "## Failures", "", *problems]
        quarantined = [
            f"| {_md(t.table)} | {_code(json.dumps(q['key']))} | {_md(q['column'])} | "
            f"{_md(q['reason'])} |"
            for t in self.tables
            for q in t.quarantine_sample
        ]
        lines += self._quarantine_reason_lines()
        if quarantined:
            lines += [
                "",
                "## Quarantined rows",
                "",
                "First rows per table; all of them are in `consoleai_etl.quarantine` "
                f"(run_id `{self.run_id}`).",
                "",
                "| table | key | column | reason |",
                "| --- | --- | --- | --- |",
                *quarantined,
            ]
        warnings = [f"- {_md(w)}" for w in self.warnings]
        warnings += [
            f"- **{_md(t.table)}** {c.name}: {_md(c.description)}"
            for t in self.tables
            for c in t.checks
            if c.warned
        ]
        warnings += [f"- **{_md(t.table)}**: {_md(w)}" for t in self.tables for w in t.warnings]
        warnings += [
            f"- {o['kind']} {_code(o['name'])} not migrated" for o in self.schema_objects_skipped
        ]
        if warnings:
            lines += ["", "## Warnings", "", *warnings]
        return "\n".join(lines + self._view_lines()) + "\n"

    def _skipped_lines(self) -> list[str]:
        """The source tables the run left out, their rows and why (see the Warnings)."""
        if not self.skipped_tables:
            return []
        return [
            "",
            "## Skipped tables",
            "",
            "Left out of this run: neither loaded nor checked; their rows are not in the target.",
            "",
            "| table | source rows | why |",
            "| --- | ---: | --- |",
            *(
                f"| {_md(s.table)} | {s.source_rows:,} | {_md(s.reason)} |"
                for s in self.skipped_tables
            ),
        ]

    def _chart_lines(self) -> list[str]:
        """Each table's time and rows (``chart_series``) as text bars in a code block: a
        chart any Markdown renders, the Dagster UI's included (it shows Mermaid as plain
        code)."""
        if not self.tables:
            return []
        names = [_short(t.table) for t in self.tables]
        width = max(len(n) for n in names)
        (timed, seconds), (counted, rows) = self.chart_series()
        bars = [
            f"{name:<{width}} {number(s, '.2f'):>8} s {text_bar(s_bar, 20):<20} "
            f"{number(r):>13} rows {text_bar(r_bar, 20)}".rstrip()
            for name, s, r, s_bar, r_bar in zip(
                names, seconds, rows, fractions(seconds), fractions(rows), strict=True
            )
        ]
        fence = "`" * max([3, *(len(run) + 1 for run in re.findall("`+", "".join(names)))])
        heading = f"{timed.split()[0].capitalize()} time and {counted} per table"
        return ["", f"## {heading}", "", fence, *bars, fence]

    def _quarantine_reason_lines(self) -> list[str]:
        """Every quarantined row counted per table, column and reason class, with a bar."""
        counted = [(t.table, q) for t in self.tables for q in t.quarantine_reasons]
        if not counted:
            return []
        shares = fractions([int(q["rows"]) for _t, q in counted])
        return [
            "",
            "## Quarantine by reason",
            "",
            "A refused value's reason names the value, so it is counted by its class.",
            "",
            "| table | column | reason | rows | share |",
            "| --- | --- | --- | ---: | --- |",
            *(
                f"| {_md(table)} | {_md(q['column'] or '—')} | {_md(q['reason'])} | "
                f"{q['rows']:,} | {text_bar(share, 10)} |"
                for (table, q), share in zip(counted, shares, strict=True)
            ),
        ]

    def _merge_lines(self) -> list[str]:
        """Merge mode: what each table wrote into its existing target table (a dry run:
        would write), and plainly when nothing was written at all; then the conflicts, and
        where every row the application changed is listed."""
        merged = [t.merge for t in self.tables if t.merge is not None]
        if not merged:
            return []
        written = sum(int(m["inserted"]) + int(m["updated"]) for m in merged)  # type: ignore[call-overload]
        contested = sum(int(m["kept_application_changes"]) + int(m["conflicts"]) for m in merged)  # type: ignore[call-overload]
        verb = "would write" if self.dry_run else "wrote"
        if written:
            summary = f"the merge {verb} {written:,} rows (inserted or updated)"
        elif contested:
            summary = (
                "nothing written: the target holds every source row, but for rows the "
                "application changed since the last merge, kept"
            )
        else:
            summary = "nothing written: the target already holds every source row unchanged"
        headings = [name.replace("_", " ") for name in MERGE_COUNTS]
        lines = [
            "",
            "## Merge",
            "",
            f"- {summary}",
            "",
            f"| table | {' | '.join(headings)} | sequences moved |",
            f"| --- |{' ---: |' * len(headings)} --- |",
        ]
        for t in self.tables:
            if (m := t.merge) is None:
                continue
            moved = ", ".join(f"{c} → {v}" for c, v in dict(m.get("sequences_moved") or {}).items())
            counts = " | ".join(str(m[name]) for name in MERGE_COUNTS)
            lines.append(f"| {_md(t.table)} | {counts} | {_md(moved) or '—'} |")
        lines += [f"- {_md(problem)}" for problem in conflict_problems(self)]
        lines += self._seeded_lines()
        if contested and not self.dry_run:
            lines.append(
                "- every row the application changed since the last merge, with its key: "
                f"`consoleai_etl.application_changes`, run_id `{self.run_id}`"
            )
        return lines

    def _seeded_lines(self) -> list[str]:
        """Merge mode's seeded tables (docs/merge-seeded-tables.md): rows matched on the
        natural key, inserted (with a new id where the target used theirs), and the
        references to them rewritten to the application's ids, per column."""
        seeded = [(t.table, m["seeded"]) for t in self.tables if "seeded" in (m := t.merge or {})]
        if not seeded:
            return []
        lines = [
            "",
            "Seeded tables, matched on their natural key; references rewritten to the "
            "application's ids:",
            "",
            "| table | natural key | matched | inserted | new ids | references rewritten "
            "| per column |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for table, s in seeded:
            columns = ", ".join(f"{c} {n}" for c, n in s["rewritten_columns"].items())  # type: ignore[index]
            lines.append(
                f"| {_md(table)} | {_md(', '.join(s['key']))} | {s['matched']} | "  # type: ignore[index]
                f"{s['inserted']} | {s['new_ids']} | {s['references_rewritten']} | "  # type: ignore[index]
                f"{_md(columns) or '—'} |"
            )
        return lines

    def _view_lines(self) -> list[str]:
        """Each view: created and proven (rows and checksum on both sides), or why not."""
        if not self.views:
            return []
        lines = [
            "",
            "## Views",
            "",
            "| view | created | SQLite rows | PostgreSQL rows | checksum | reason |",
            "| --- | --- | ---: | ---: | --- | --- |",
        ]
        for v in self.views:
            same = v["sqlite_checksum"] == v["pg_checksum"]
            checksum = v["pg_checksum"] if same else f"{v['sqlite_checksum']} ≠ {v['pg_checksum']}"
            lines.append(
                f"| {_md(v['name'])} | {'✅' if v['created'] else '❌'} | "
                f"{number(v['sqlite_rows'])} | {number(v['pg_rows'])} | {checksum or '—'} | "
                f"{_md(v['reason'] or 'same rows as in SQLite')} |"
            )
        lines += [
            f"- {_code(v['name'])} source SQL: {_code(v['source_sql'])}; translated: "
            f"{_code(v['target_sql'])}"
            for v in self.views
            if not v["created"]
        ]
        return lines

    def compare_with(self, previous: dict | None) -> None:
        """Record whether every table has the same rows and checksum as a previous run."""
        if previous is None:
            return
        before = {t["table"]: t for t in previous.get("tables", [])}
        differences = []
        for table in self.tables:
            old = before.get(table.table)
            if old is None:
                differences.append(f"{table.table}: not in the previous run")
            elif (old.get("loaded_rows"), old.get("checksum")) != (
                table.loaded_rows,
                table.checksum,
            ):
                differences.append(
                    f"{table.table}: checksum {old.get('checksum')} -> {table.checksum}, "
                    f"rows {old.get('loaded_rows')} -> {table.loaded_rows}"
                )
        self.idempotency = {
            "previous_run": previous.get("run_id"),
            "identical": not differences,
            "differences": differences,
        }

    def _idempotency_lines(self) -> list[str]:
        if self.idempotency is None:
            return []
        previous = self.idempotency["previous_run"]
        if self.idempotency["identical"]:
            return [
                f"- identical to the previous run `{previous}`: same rows and checksum in "
                "every table"
            ]
        return [f"- differs from the previous run `{previous}`:"] + [
            f"  - {_md(d)}"
            for d in self.idempotency["differences"]  # type: ignore[union-attr]
        ]

    def write(self, directory: Path) -> tuple[Path, Path, Path]:
        """Write ``migration-report-<run_id>.json/.md/.html`` and refresh ``latest.*``."""
        # report_html renders this module's model, so it can only be imported once this
        # module is.
        from consoleai_etl.core.run.report_html import render_html

        directory.mkdir(parents=True, exist_ok=True)
        stem = directory / f"migration-report-{self.run_id}"
        paths = stem.with_suffix(".json"), stem.with_suffix(".md"), stem.with_suffix(".html")
        contents = self.to_json(), self.to_markdown(), render_html(self)
        for path, content in zip(paths, contents, strict=True):
            path.write_text(content, encoding="utf-8")
            (directory / f"latest{path.suffix}").write_text(content, encoding="utf-8")
        return paths


# What could make a name or a reason markup: HTML (``<b>``, ``&amp;``), links, emphasis,
# code spans, a table cell's end. ``_`` is left alone inside words, where CommonMark never
# reads it as emphasis, so ``workflow_runs`` stays readable in the raw file.
_MARKUP = re.compile(r"[\\`*\[\]<>|&~]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


def _md(text: object) -> str:
    """``text`` as plain text in Markdown (a GFM table cell included), on one line: names
    and values come from the source, and a table named ``<b>x`` must not become bold."""
    return _MARKUP.sub(lambda m: "\\" + m[0], " ".join(str(text).splitlines()))


def _code(text: object) -> str:
    """``text`` as an inline code span, on one line: fenced by more backticks than it
    holds (backslashes do not escape inside a span), its ``|`` escaped for GFM tables,
    which split cells before reading spans."""
    text = " ".join(str(text).splitlines()).replace("|", "\\|")
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _short(name: str, limit: int = 32) -> str:
    """A table's name on one line of a chart, cut to ``limit`` characters."""
    name = " ".join(name.split())
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _mark(check: CheckReport) -> str:
    return "✅" if check.passed else ("⚠️" if check.warned else "❌")


def number(value: float | None, spec: str = ",") -> str:
    """A number as the reports show it (``spec``: its format), or — where there is none."""
    return "—" if value is None else format(value, spec)


def view_problems(report: MigrationReport) -> list[str]:
    return [
        f"view {v['name']} not created: {v['reason']}" for v in report.views if not v["created"]
    ]


def conflict_problems(report: MigrationReport) -> list[str]:
    """A line per merged table with conflicts: rows both the source and the application
    changed since the last merge, how ``on_conflict`` settled them, the first keys."""
    problems = []
    for t in report.tables:
        merge = t.merge or {}
        conflicts = int(merge.get("conflicts") or 0)  # type: ignore[call-overload]
        if not conflicts:
            continue
        settled = (
            "the source's rows written over the application's (on_conflict: source)"
            if merge.get("on_conflict") == "source"
            else "the application's rows kept (on_conflict: target)"
        )
        keys = named_keys(merge.get("conflict_keys") or [], conflicts)  # type: ignore[arg-type]
        problems.append(
            f"{t.table}: {conflicts:,} rows changed both in the source and by the application "
            f"since the last merge, {settled}: keys {keys}"
        )
    return problems


def next_steps(report: MigrationReport, allow_divergence: str) -> list[str]:
    """What a migration leaves its reader to know and do, beyond its reasons: that the
    target is unchanged when nothing was promoted, the option that promotes a divergent
    run anyway (``allow_divergence``: as the reader's interface spells it, the command
    line's flag or the run config's key) when only divergence failed it, and where its
    quarantined rows are. A verification changes nothing and has no such option."""
    if report.what != "migration":
        return []
    totals, steps = report.totals, []
    if not report.promoted and not report.dry_run:
        steps.append("nothing promoted: the target is unchanged")
    divergent = totals["failed_checks"] or totals["quarantined_rows"]
    loads_failed = any(t.error for t in report.tables)
    if report.status == FAILURE and divergent and not loads_failed and not report.allow_divergence:
        steps.append(
            "to accept the failed checks and quarantined rows and promote anyway, "
            f"run again with {allow_divergence}"
        )
    if totals["quarantined_rows"]:
        steps.append(
            f"the {totals['quarantined_rows']:,} quarantined rows, with key, column and reason: "
            f"table consoleai_etl.quarantine, run_id '{report.run_id}'"
        )
    return steps


def named_keys(keys: Sequence[object], count: int) -> str:
    """The first ``keys`` of ``count`` as JSON on one line, saying how many more there are."""
    more = count - len(keys)
    return ", ".join(json.dumps(key) for key in keys) + (f" and {more:,} more" if more > 0 else "")


def decide(report: MigrationReport) -> None:
    """Set ``status`` and ``reasons`` from the tables, checks, quarantine counts, views and
    merge conflicts.

    Only ERROR checks decide: a failed WARN check (a declared type the stored values
    overruled) is added to the reasons as a warning and leaves the status as it is, since
    every value still arrived unchanged. A view that was not created lowers a plain success
    to ``success_with_warnings`` (the tables are all proven, the target lacks views), and so
    does a skipped source table (its rows are not in the target: declared, never a failure)
    and a merge conflict (a row both sides changed: one side's change was not taken); with
    any other status their reasons are added. Called again once the promotion has created
    (or refused) the views, and once the merge has counted its conflicts."""
    reasons = [f"{t.table}: load failed: {t.error}" for t in report.tables if t.error]
    checks = [(t, c) for t in report.tables for c in t.checks]
    failed = [f"{t.table}: check {c.name} failed: {c.description}" for t, c in checks if c.failed]
    warned = [f"{t.table}: check {c.name} warns: {c.description}" for t, c in checks if c.warned]
    quarantined = report.totals["quarantined_rows"]
    if quarantined:
        tables = ", ".join(
            f"{t.table} ({t.quarantined_rows})" for t in report.tables if t.quarantined_rows
        )
        failed.append(f"{quarantined} rows quarantined: {tables}")
    if reasons or (failed and not report.allow_divergence):
        status = FAILURE
    elif any(c.failed for _t, c in checks):
        status = SUCCESS_WITH_DIVERGENCE
    elif quarantined:
        status = SUCCESS_WITH_QUARANTINE
    else:
        status = SUCCESS
    warnings = view_problems(report) + [str(s) for s in report.skipped_tables]
    warnings += conflict_problems(report)
    if status == SUCCESS and warnings:
        status = SUCCESS_WITH_WARNINGS
    report.status = status
    report.reasons = reasons + failed + warnings + warned or [ALL_CLEAR]

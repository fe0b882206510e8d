"""A whole migration run, framework-free: which tables to stage, stage them, decide, promote.

The Dagster table assets call ``migrate`` once for the tables a run selected, inside one
step, so the lock, the snapshot of the source and the two staging threads live in that
step whatever executor runs it; the run's report is recorded in ``consoleai_etl.runs``,
where the report step reads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass

from consoleai_etl.core.encode import compiled
from consoleai_etl.core.plan.order import load_order
from consoleai_etl.core.run import interrupt
from consoleai_etl.core.run.pipeline import MigrationConfig, finalize
from consoleai_etl.core.run.progress import STAGING, Waiting, listening, phase, waited
from consoleai_etl.core.run.report import MigrationReport
from consoleai_etl.core.run.stager import Stager, TableToStage
from consoleai_etl.core.source.catalog import Catalog
from consoleai_etl.core.source.snapshot import Snapshot
from consoleai_etl.core.target.promote import Promotion


@dataclass(frozen=True)
class MigrationPlan:
    """The source's tables in foreign-key order, each with the parents it waits for, the
    foreign keys that close a cycle (created at promotion, see ``order``) and the tables of
    its cycle (staged with it as one unit in merge mode)."""

    catalog: Catalog
    tables: tuple[TableToStage, ...]

    @classmethod
    def of(cls, catalog: Catalog) -> MigrationPlan:
        order = load_order(catalog)
        by_name = {t.name: t for t in catalog.tables}
        tables = tuple(
            TableToStage(
                by_name[name],
                order.upstream[name],
                tuple(fk for child, fk in order.deferred if child == name),
                order.cycle(name),
            )
            for name in order.tables
        )
        return cls(catalog, tables)

    def promotion(self, selected: Sequence[TableToStage]) -> Promotion:
        """What promoting ``selected`` creates: the tables, their cycle-closing foreign keys
        and the source's views."""
        return Promotion(
            self.catalog,
            tuple(t.table for t in selected),
            tuple((t.table, fk) for t in selected for fk in t.deferred),
        )


def migrate(
    config: MigrationConfig,
    report: MigrationReport,
    plan: MigrationPlan,
    selected: Sequence[TableToStage],
    snapshot: Snapshot | None,
    *,
    progress_every: float,
    log: Callable[[str], None],
) -> MigrationReport:
    """Stage ``selected`` two at a time (progress lines to ``log``), then decide the
    verdict, promote when it allows and record the run (``pipeline.finalize``). A selected
    table the run skips (``config.skipped``) is neither staged nor promoted: the report
    lists it. Without the compiled load stream, the run's log says so once, and how to get
    it. A stop request (``interrupt``) ends it with ``Interrupted`` at the next safe point,
    nothing promoted."""
    if (notice := compiled.notice()) is not None:
        log(notice)
    report.skipped_tables = [s for t in selected if (s := config.skipping(t.table.name))]
    staged = [t for t in selected if not config.skipping(t.table.name)]
    with interrupt.stoppable():
        phase(None, STAGING)
        with closing(Stager(config, report.run_id, staged, progress_every)) as stager:
            reports = stager.reports(log)
        report.tables = [reports[t.table.name] for t in staged]
        report.staged_at = round(time.time(), 3)
        report.schema_objects_skipped = [
            {"kind": o.kind, "name": o.name} for o in plan.catalog.others if o.kind != "view"
        ]
        # The promotion's lock waits are published on this thread: logged as they come.
        with listening(lambda e: isinstance(e, Waiting) and log(waited(e))):
            return finalize(config, report, plan.promotion(staged), snapshot)

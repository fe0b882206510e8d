"""Wire the Dagster definitions from the catalog of the source database.

The asset graph mirrors the SQLite file named by CONSOLEAI_SQLITE_PATH: one asset per
table, deps from foreign keys. Before that file exists (fresh clone), the graph shows the
ConsoleAI domain tables, introspected from the sample generator's DDL.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import dagster as dg

from consoleai_etl.core.errors import SourceError
from consoleai_etl.core.plan.order import load_order
from consoleai_etl.core.run.stager import StagedTable, finish_order, largest_first, table_sizes
from consoleai_etl.core.source.catalog import Catalog, introspect
from consoleai_etl.core.source.connection import open_source
from consoleai_etl.defs.checks import asset_keys
from consoleai_etl.defs.consistency_job import make_consistency_job
from consoleai_etl.defs.console_log import CONCISE_CONSOLE, concise_console_logger
from consoleai_etl.defs.report_asset import make_report_asset
from consoleai_etl.defs.settings import DEFAULT_SQLITE_PATH, MigrationSettings
from consoleai_etl.defs.table_assets import MIGRATION_JOB, make_table_asset, preflight
from consoleai_etl.demo.domain import SCHEMA


def load_catalog(sqlite_path: str | Path) -> Catalog:
    """The source's catalog, or the ConsoleAI domain catalog when the file does not exist or
    cannot be read: the code location must still load, and the run's preflight then stops
    with the real problem in one line."""
    if Path(sqlite_path).exists():
        try:
            with closing(open_source(sqlite_path)) as conn:
                return introspect(conn)
        except (SourceError, sqlite3.DatabaseError):
            pass
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.executescript(SCHEMA)
        return introspect(conn)


def _table_sizes(sqlite_path: str | Path, tables: Sequence[StagedTable]) -> dict[str, int]:
    """Each table's size estimate, or {} when the file cannot be read (see ``load_catalog``)."""
    try:
        return table_sizes(sqlite_path, tables)
    except (SourceError, sqlite3.DatabaseError):
        return {}


def build_definitions(sqlite_path: str | Path | None = None) -> dg.Definitions:
    path = sqlite_path or os.environ.get("CONSOLEAI_SQLITE_PATH", DEFAULT_SQLITE_PATH)
    catalog = load_catalog(path)
    order = load_order(catalog)
    by_name = {t.name: t for t in catalog.tables}
    deferred = tuple((by_name[child], fk) for child, fk in order.deferred)
    staged = tuple(
        StagedTable(
            by_name[name],
            order.upstream[name],
            tuple(fk for child, fk in order.deferred if child == name),
        )
        for name in order.tables
    )
    rows = _table_sizes(path, staged)
    finishing = finish_order(largest_first(staged, rows), rows)
    keys = asset_keys(catalog.tables)
    table_assets = [
        make_table_asset(s, staged, keys, priority=len(finishing) - finishing.index(s))
        for s in staged
    ]
    migration_job = dg.define_asset_job(
        MIGRATION_JOB,
        selection=dg.AssetSelection.all(),
        executor_def=dg.in_process_executor,
        config=CONCISE_CONSOLE,
        description="Load every legacy table, check it, write the report, promote if clean.",
    )
    return dg.Definitions(
        assets=[preflight, *table_assets, make_report_asset(catalog, deferred)],
        jobs=[migration_job, make_consistency_job(catalog)],
        resources={"settings": MigrationSettings()},
        loggers={"console": concise_console_logger},
    )


defs = build_definitions()

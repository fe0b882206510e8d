"""Wire the Dagster definitions from the catalog of the source database (wiring only).

With CONSOLEAI_ENVIRONMENTS_DIR set, the same graph is partitioned by environment, built
from the folder's reference file (``defs.environments``).

The asset graph mirrors the SQLite file named by CONSOLEAI_SQLITE_PATH: the
``legacy_tables`` multi-asset (one asset per table, deps from foreign keys, and
``migration_run``), then ``migration_report``. Before that file exists (fresh clone), the
graph shows the ConsoleAI domain tables, introspected from the sample generator's DDL.
Every key begins with the target's database and schema (``consoleai/public/users``): a
table is an asset per target, with a history of its own.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import dagster as dg

from consoleai_etl.core.errors import SourceError
from consoleai_etl.core.run.migration import MigrationPlan
from consoleai_etl.core.run.report import MIGRATION_JOB
from consoleai_etl.core.source.catalog import Catalog, introspect
from consoleai_etl.core.source.connection import open_source
from consoleai_etl.core.source.environments import environment_file, environment_files
from consoleai_etl.core.source.per_version import PerVersion
from consoleai_etl.core.target.naming import TargetName
from consoleai_etl.defs.checks import asset_keys, key_prefix, run_key
from consoleai_etl.defs.consistency_job import make_consistency_job
from consoleai_etl.defs.console_log import CONCISE_CONSOLE, concise_console_logger
from consoleai_etl.defs.environments import (
    ENVIRONMENT_JOB,
    ENVIRONMENTS,
    make_environment_sensor,
)
from consoleai_etl.defs.report_asset import make_report_asset
from consoleai_etl.defs.settings import (
    DEFAULT_SQLITE_PATH,
    MigrationSettings,
    SourceGraph,
    target_of,
)
from consoleai_etl.defs.table_assets import make_table_assets
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


def build_definitions(
    sqlite_path: str | Path | None = None,
    environments_dir: str | None = None,
    target: TargetName | None = None,
) -> dg.Definitions:
    """Definitions for the SQLite file at ``sqlite_path`` (default: CONSOLEAI_SQLITE_PATH)
    migrating into ``target`` (default: CONSOLEAI_PG_DSN's database and
    CONSOLEAI_TARGET_SCHEMA), whose names begin every asset key (``checks.key_prefix``);
    or, given ``environments_dir``, for its environments: the graph from the first of their
    files by name (the reference every other must agree with in tables), each environment
    a partition (``defs.environments``) with a target of its own."""
    if environments_dir:
        files = environment_files(environments_dir)
        path: str | Path = next(iter(files.values()), environment_file(environments_dir, "none"))
        partitions, job_name = ENVIRONMENTS, ENVIRONMENT_JOB
        sensors = [make_environment_sensor(environments_dir)]
        description = "Migrate one environment (a partition): every table, checked, promoted if "
        target = None
    else:
        path = sqlite_path or os.environ.get("CONSOLEAI_SQLITE_PATH", DEFAULT_SQLITE_PATH)
        partitions, job_name, sensors = None, MIGRATION_JOB, []
        description = "Migrate every legacy table, check it, promote if "
        target = target or target_of({})  # the variables' target
    catalog = load_catalog(path)
    prefix = key_prefix(target)
    keys = asset_keys(catalog.tables, prefix)
    migration_job = dg.define_asset_job(
        job_name,
        selection=dg.AssetSelection.all(),
        executor_def=dg.in_process_executor,
        config=CONCISE_CONSOLE,
        description=description + "clean, write the report.",
    )
    graph = SourceGraph.of(path, catalog, environments_dir, target)
    return dg.Definitions(
        assets=[
            make_table_assets(MigrationPlan.of(catalog), keys, run_key(prefix), partitions),
            make_report_asset(prefix, partitions),
        ],
        jobs=[migration_job, make_consistency_job(catalog, keys, partitions)],
        sensors=sensors,
        resources={"settings": MigrationSettings(asset_graph=graph)},
        loggers={"console": concise_console_logger},
        # A backfill launched from the UI runs each partition in one process, as the jobs do.
        executor=dg.in_process_executor if environments_dir else None,
    )


def build_job(sqlite_path: str, job_name: str, database: str, schema: str) -> dg.JobDefinition:
    """Job ``job_name`` of the definitions built from ``sqlite_path`` into the target named
    ``database`` and ``schema``: what ``consoleai-etl`` runs, through
    ``dg.build_reconstructable_job`` (this module, this function, these arguments), so the
    graph comes from the file the command names and is keyed by the target it names
    whatever the CONSOLEAI_* variables say, and the run's recorded origin names both."""
    target = TargetName(database, schema)
    if target not in _definitions:
        _definitions[target] = PerVersion(lambda file: build_definitions(str(file), target=target))
    return _definitions[target].get(sqlite_path).resolve_job_def(job_name)


# Dagster loads a reconstructable job four times in a run (to check it, plan, create the run,
# execute): the file's schema is read and the definitions built once per version of the file
# (and target).
_definitions: dict[TargetName, PerVersion[dg.Definitions]] = {}


@dg.definitions
@functools.cache  # Dagster calls it five times to load and run one job: build once
def defs() -> dg.Definitions:
    """The code location's definitions, built from CONSOLEAI_SQLITE_PATH when Dagster loads
    them (``dagster job execute -m consoleai_etl``, the web UI), not when the package is
    imported: the ``consoleai-etl`` command imports it to run a job of its own SOURCE, and
    must not first read the schema of whatever file the variable names. With
    CONSOLEAI_ENVIRONMENTS_DIR set, they migrate the folder's environments instead."""
    return build_definitions(environments_dir=os.environ.get("CONSOLEAI_ENVIRONMENTS_DIR"))

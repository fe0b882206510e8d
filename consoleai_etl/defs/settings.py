"""The ``settings`` resource: every run option, from environment defaults or run config YAML.

resources:
  settings:
    config: {dry_run: true, allow_divergence: false, target_schema: legacy}
"""

import os
from dataclasses import replace
from pathlib import Path

import dagster as dg
import yaml
from pydantic import Field, PrivateAttr

from consoleai_etl.core.errors import MigrationError
from consoleai_etl.core.plan.rules import parse_rules
from consoleai_etl.core.run.pipeline import MODES, MigrationConfig
from consoleai_etl.core.run.preflight import (
    RunLock,
    StagingLock,
    check_ownership,
    check_source,
    check_target,
)
from consoleai_etl.core.source.snapshot import Snapshot
from consoleai_etl.core.target.bookkeeping import staging_schema
from consoleai_etl.core.target.postgres import embedded_dsn

DEFAULT_SQLITE_PATH = "data/consoleai_legacy.sqlite"
EMBEDDED_DATA_DIR = ".data/postgres"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class CastingRuleConfig(dg.Config):
    """One casting rule (see the README's "Casting rules")."""

    column: str | None = Field(default=None, description="table.column this rule applies to")
    declared_type: str | None = Field(default=None, description="or: a declared SQLite type")
    target_type: str | None = Field(default=None, description="PostgreSQL type to use")
    date_encoding: str | None = Field(
        default=None, description="auto | iso | unix_seconds | unix_ms | julian_day"
    )
    on_error: str | None = Field(default=None, description="quarantine | fail | widen | null")
    text_repair: list[str] = Field(default=[], description="strip_nul and/or latin1")


def _rules_file(path: str) -> list[dict]:
    """Rules from a YAML file: a list of rules, or a mapping with a `casting_rules` list."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise MigrationError(f"cannot read casting rules from {path}: {exc}") from None
    rules = data.get("casting_rules") if isinstance(data, dict) else data
    if not isinstance(rules, list):
        raise MigrationError(f"{path}: expected a list of casting rules")
    return rules


class MigrationSettings(dg.ConfigurableResource):
    """Run options. An option left unset in run config falls back to its CONSOLEAI_* variable,
    then to the built-in default, so `-c run.yaml` can set just what it changes."""

    sqlite_path: str | None = Field(
        default=None,
        description=f"Legacy SQLite file; else CONSOLEAI_SQLITE_PATH, else {DEFAULT_SQLITE_PATH}.",
    )
    pg_dsn: str | None = Field(
        default=None,
        description="Target DSN; else CONSOLEAI_PG_DSN, else an embedded server in .data/.",
    )
    target_schema: str | None = Field(
        default=None, description="Else CONSOLEAI_TARGET_SCHEMA, else public."
    )
    report_dir: str | None = Field(
        default=None, description="Else CONSOLEAI_REPORT_DIR, else reports/."
    )
    dry_run: bool | None = Field(
        default=None,
        description="Load and check in staging only, never touch the target (CONSOLEAI_DRY_RUN).",
    )
    allow_divergence: bool | None = Field(
        default=None,
        description="Promote and exit 0 even when checks fail or rows are quarantined "
        "(CONSOLEAI_ALLOW_DIVERGENCE).",
    )
    mode: str | None = Field(
        default=None, description=f"One of: {', '.join(MODES)} (CONSOLEAI_MODE)."
    )
    orphans: str | None = Field(
        default=None,
        description="FK orphans: quarantine (default) | keep | fail (CONSOLEAI_ORPHANS).",
    )
    replace_existing: bool | None = Field(
        default=None,
        description="Replace tables/views of the same name that no earlier run promoted into "
        "the target schema (an application's own); else the run stops in preflight "
        "(CONSOLEAI_REPLACE_EXISTING).",
    )
    casting_rules: list[CastingRuleConfig] | None = Field(
        default=None,
        description="Per-column / per-declared-type overrides; else the YAML file named by "
        "CONSOLEAI_CASTING_RULES.",
    )

    _lock: RunLock | None = PrivateAttr(default=None)
    _staging_lock: StagingLock | None = PrivateAttr(default=None)
    _checked: bool = PrivateAttr(default=False)
    _snapshot: Snapshot | None = PrivateAttr(default=None)

    def preflight(self, *, lock: bool) -> MigrationConfig:
        """Check options, source and target once per run, before anything is written; with
        ``lock`` (a migration), also check that the run would replace only what earlier
        runs promoted, and take the per-schema lock that keeps a second migration out. Then
        take the run's ``Snapshot`` of the source: the returned config points the readers at it.

        Called by the table assets' step (and the consistency job's ops). It raises
        ``MigrationError`` with a one-line message inside a step, because Dagster's CLI turns
        resource-setup errors into tracebacks. The lock and the snapshot live on this
        resource until teardown, so everything a step reads comes from one moment.
        """
        config = self.to_config()
        if not self._checked:
            check_source(config.sqlite_path)
            check_target(config.pg_dsn, config.target_schema)
            if lock and not config.dry_run and not config.replace_existing:
                check_ownership(config.sqlite_path, config.pg_dsn, config.target_schema)
            self._checked = True
        if lock and self._lock is None:
            self._lock = RunLock(config.pg_dsn, config.target_schema)
        if self._snapshot is None:
            self._snapshot = Snapshot.take(config.sqlite_path)
        return replace(config, sqlite_path=str(self._snapshot.path))

    @property
    def snapshot(self) -> Snapshot | None:
        """The run's snapshot; None in a process whose steps took none (the report step
        of a multi-process run)."""
        return self._snapshot

    def hold_staging(self, config: MigrationConfig, run_id: str) -> None:
        """Mark the run's staging schema alive (``StagingLock``) from its first table step
        until teardown, so that another run starting meanwhile leaves it alone."""
        if self._staging_lock is None:
            self._staging_lock = StagingLock(config.pg_dsn, staging_schema(run_id))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._snapshot is not None:
            self._snapshot.close()
            self._snapshot = None
        for lock in (self._lock, self._staging_lock):
            if lock is not None:
                lock.release()
        self._lock = self._staging_lock = None

    def to_config(self) -> MigrationConfig:
        """The resolved, framework-free config; starts the embedded PostgreSQL if no DSN."""
        env = os.environ
        dsn = self.pg_dsn or env.get("CONSOLEAI_PG_DSN") or embedded_dsn(EMBEDDED_DATA_DIR)
        return MigrationConfig(
            sqlite_path=self.sqlite_path or env.get("CONSOLEAI_SQLITE_PATH", DEFAULT_SQLITE_PATH),
            pg_dsn=dsn,
            target_schema=self.target_schema or env.get("CONSOLEAI_TARGET_SCHEMA", "public"),
            report_dir=self.report_dir or env.get("CONSOLEAI_REPORT_DIR", "reports"),
            dry_run=_env_flag("CONSOLEAI_DRY_RUN") if self.dry_run is None else self.dry_run,
            allow_divergence=_env_flag("CONSOLEAI_ALLOW_DIVERGENCE")
            if self.allow_divergence is None
            else self.allow_divergence,
            mode=self.mode or env.get("CONSOLEAI_MODE", "replace"),
            orphans=self.orphans or env.get("CONSOLEAI_ORPHANS", "quarantine"),
            replace_existing=_env_flag("CONSOLEAI_REPLACE_EXISTING")
            if self.replace_existing is None
            else self.replace_existing,
            casting_rules=parse_rules(
                [rule.model_dump() for rule in self.casting_rules]
                if self.casting_rules is not None
                else _rules_file(env["CONSOLEAI_CASTING_RULES"])
                if env.get("CONSOLEAI_CASTING_RULES")
                else []
            ),
        )

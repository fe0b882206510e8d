"""The ``settings`` resource: every run option, from environment defaults or run config YAML.

resources:
  settings:
    config: {dry_run: true, allow_divergence: false, target_schema: legacy}
"""

import os

import dagster as dg
from pydantic import Field

from consoleai_etl.core.pipeline import MODES, MigrationConfig
from consoleai_etl.core.postgres import embedded_dsn

DEFAULT_SQLITE_PATH = "data/consoleai_legacy.sqlite"
EMBEDDED_DATA_DIR = ".data/postgres"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


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
        )

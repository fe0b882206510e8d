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
    """Where to read, where to write and how strictly (see the README's "Run options")."""

    sqlite_path: str = Field(
        default=DEFAULT_SQLITE_PATH, description="Legacy SQLite file (CONSOLEAI_SQLITE_PATH)."
    )
    pg_dsn: str = Field(
        default="",
        description="Target PostgreSQL DSN (CONSOLEAI_PG_DSN); empty = embedded server in .data/.",
    )
    target_schema: str = Field(default="public", description="CONSOLEAI_TARGET_SCHEMA")
    report_dir: str = Field(default="reports", description="CONSOLEAI_REPORT_DIR")
    dry_run: bool = Field(
        default=False, description="Load and check in staging only; never touch the target."
    )
    allow_divergence: bool = Field(
        default=False,
        description="Promote and exit 0 even when checks fail or rows are quarantined.",
    )
    mode: str = Field(default="replace", description=f"One of: {', '.join(MODES)}.")

    @classmethod
    def from_env(cls) -> "MigrationSettings":
        """Defaults from CONSOLEAI_* variables; the DSN stays an EnvVar so the UI never shows it."""
        dsn: str | dg.EnvVar = (
            dg.EnvVar("CONSOLEAI_PG_DSN") if os.environ.get("CONSOLEAI_PG_DSN") else ""
        )
        return cls(
            sqlite_path=os.environ.get("CONSOLEAI_SQLITE_PATH", DEFAULT_SQLITE_PATH),
            pg_dsn=dsn,
            target_schema=os.environ.get("CONSOLEAI_TARGET_SCHEMA", "public"),
            report_dir=os.environ.get("CONSOLEAI_REPORT_DIR", "reports"),
            dry_run=_env_flag("CONSOLEAI_DRY_RUN"),
            allow_divergence=_env_flag("CONSOLEAI_ALLOW_DIVERGENCE"),
            mode=os.environ.get("CONSOLEAI_MODE", "replace"),
        )

    def to_config(self) -> MigrationConfig:
        """The framework-free config, starting the embedded PostgreSQL when no DSN is set."""
        return MigrationConfig(
            sqlite_path=self.sqlite_path,
            pg_dsn=self.pg_dsn or embedded_dsn(EMBEDDED_DATA_DIR),
            target_schema=self.target_schema,
            report_dir=self.report_dir,
            dry_run=self.dry_run,
            allow_divergence=self.allow_divergence,
            mode=self.mode,
        )

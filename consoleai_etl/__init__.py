"""consoleai-etl: migrate the ConsoleAI legacy SQLite database into PostgreSQL, provably.

This module is the Dagster code location (``dagster job execute -m consoleai_etl``).
"""

from consoleai_etl.definitions import defs

__all__ = ["defs"]

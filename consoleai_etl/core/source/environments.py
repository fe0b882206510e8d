"""Environments: installations of the same application, each with its own SQLite file.

A folder of ``<environment>.sqlite`` files (CONSOLEAI_ENVIRONMENTS_DIR) names them: the
environment is the file's name without ``.sqlite``. A run migrates one of them, into the
target its options name after it: ``{environment}`` in the target schema, the DSN or the
report folder (``env_{environment}``) is replaced by the environment's name, so that no two
environments share a schema, a database or a report folder by accident.
"""

from __future__ import annotations

import re
from pathlib import Path

from consoleai_etl.core.errors import MigrationError, option

PLACEHOLDER = "{environment}"
SUFFIX = ".sqlite"
# A name that is safe in a Dagster partition key, a schema name and a file name alike.
NAME = re.compile(r"[A-Za-z0-9_-]{1,50}")


def environment_files(directory: str | Path) -> dict[str, Path]:
    """The environments of ``directory`` by name, sorted: its ``*.sqlite`` files whose name
    is one (letters, digits, ``_``, ``-``, up to 50); other files are not environments."""
    files = sorted(Path(directory).glob(f"*{SUFFIX}"))
    return {f.name.removesuffix(SUFFIX): f for f in files if NAME.fullmatch(f.stem)}


def environment_file(directory: str | Path, environment: str) -> Path:
    """The SQLite file of ``environment`` in ``directory``."""
    return Path(directory) / f"{environment}{SUFFIX}"


def for_environment(value: str | None, environment: str | None, name: str) -> str | None:
    """``value`` (run option ``name``, as the user set it) for a run of ``environment``:
    ``{environment}`` replaced by its name. A run of no environment (the single-file path)
    refuses the placeholder rather than create a schema or folder named after it."""
    if value is None or PLACEHOLDER not in value:
        return value
    if environment is None:
        said = option(name)
        raise MigrationError(
            f"{said} holds {PLACEHOLDER}, but this run migrates no environment: set "
            "CONSOLEAI_ENVIRONMENTS_DIR and launch a partition of the environments, or give "
            f"{said} without {PLACEHOLDER}"
        )
    return value.replace(PLACEHOLDER, environment)

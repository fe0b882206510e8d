"""Whether the compiled load stream (``_rowcopy``, built from ``_rowcopy.c``) is here.

The extension is optional at install time (``optional = true`` in pyproject.toml): a
machine without a C compiler, the Python headers or SQLite's headers still installs, and
then streams rows the Python way and hashes them with ``rowhash``: the same bytes and
hashes, only slower. Setting ``CONSOLEAI_PYTHON_STREAM=1`` takes that way even where the
extension is built, to compare the two. This module alone decides; ``rowcopy`` and
``tuples`` ask it.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

FORCE_PYTHON = "CONSOLEAI_PYTHON_STREAM"
# The tables' load work, measured on the demo sample: see docs/dependencies.md, "Without a
# C compiler".
SLOWER = 4


def _load() -> tuple[ModuleType | None, str | None]:
    """The extension module, or None and the line that says why and what to do."""
    slower = f"rows stream and are hashed in Python, loading about {SLOWER}x slower"
    if os.environ.get(FORCE_PYTHON, "") not in ("", "0"):
        return None, f"{FORCE_PYTHON} is set: {slower}; unset it for the compiled load stream"
    try:
        return importlib.import_module("consoleai_etl.core.encode._rowcopy"), None
    except ImportError as exc:
        return None, (
            f"the compiled load stream is not installed ({exc}): {slower}; for the fast path "
            "install a C compiler with the Python and SQLite headers (Debian: apt-get install "
            "gcc python3-dev libsqlite3-dev), then reinstall consoleai-etl"
        )


module, _notice = _load()


def notice() -> str | None:
    """One line for the run's log when rows stream the Python way, else None."""
    return _notice

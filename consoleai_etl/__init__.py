"""consoleai-etl: migrate the ConsoleAI legacy SQLite database into PostgreSQL, provably.

This module is the Dagster code location (``dagster job execute -m consoleai_etl``): its
``defs`` attribute is the ``@dg.definitions`` function Dagster calls to load the
``Definitions`` (so importing the package builds nothing). The Dagster layer's code lives
in the ``consoleai_etl.defs`` package; import from its modules
(``from consoleai_etl.defs.settings import ...``), since the attribute named ``defs`` on
this package is that function, not that package.

``defs`` is imported when first asked for (PEP 562: Dagster finds it with ``dir`` and
``getattr``), not when the package is: so the ``consoleai-etl`` command's entry
(``cli.entry``) can catch a Ctrl-C during the second or two Python takes to import Dagster.

Layout: ``core/`` (no Dagster: ``source``, ``plan``, ``encode``, ``target``, ``verify``,
``run``), ``defs/`` (the Dagster layer), ``definitions.py`` (wiring), ``demo/``.
"""

from __future__ import annotations

__all__ = ["defs"]


def __getattr__(name: str) -> object:
    if name != "defs":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from consoleai_etl.definitions import defs

    globals()["defs"] = defs  # importing it bound the subpackage consoleai_etl.defs here
    return defs


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

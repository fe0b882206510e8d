"""consoleai-etl: migrate the ConsoleAI legacy SQLite database into PostgreSQL, provably.

This module is the Dagster code location (``dagster job execute -m consoleai_etl``): its
``defs`` attribute is the ``@dg.definitions`` function Dagster calls to load the
``Definitions`` (so importing the package builds nothing). The Dagster layer's code lives
in the ``consoleai_etl.defs`` package; import from its modules
(``from consoleai_etl.defs.settings import ...``), since the attribute named ``defs`` on
this package is that function, not that package.

Layout: ``core/`` (no Dagster: ``source``, ``plan``, ``encode``, ``target``, ``verify``,
``run``), ``defs/`` (the Dagster layer), ``definitions.py`` (wiring), ``demo/``.
"""

from consoleai_etl.definitions import defs

__all__ = ["defs"]

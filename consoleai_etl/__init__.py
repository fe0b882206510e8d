"""consoleai-etl: migrate the ConsoleAI legacy SQLite database into PostgreSQL, provably.

This module is the Dagster code location (``dagster job execute -m consoleai_etl``): its
``defs`` attribute is the ``@dg.definitions`` function Dagster calls to load the
``Definitions`` (so importing the package builds nothing). The Dagster layer's code lives
in the ``consoleai_etl.defs`` package; import from its modules
(``from consoleai_etl.defs.settings import ...``), since the attribute named ``defs`` on
this package is that function, not that package.

``defs`` is imported when first asked for (PEP 562: Dagster finds it with ``dir`` and
``getattr``), not with the package, which imports nothing: so the ``consoleai-etl``
command's entry (``cli.entry``) can catch a Ctrl-C during the second or two Python takes
to import Dagster. Importing the subpackage ``consoleai_etl.defs`` would bind it here under
the same name; the package's module class keeps that name for the function.

Layout: ``core/`` (no Dagster: ``source``, ``plan``, ``encode``, ``target``, ``verify``,
``run``), ``defs/`` (the Dagster layer), ``definitions.py`` (wiring), ``demo/``.
"""

from __future__ import annotations

import sys
import types

__all__ = ["defs"]


class _CodeLocation(types.ModuleType):
    def __setattr__(self, name: str, value: object) -> None:
        if name == "defs" and isinstance(value, types.ModuleType):
            return  # the import system binding the subpackage: ``defs`` is the function
        super().__setattr__(name, value)


def __getattr__(name: str) -> object:
    if name != "defs":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from consoleai_etl.definitions import defs

    globals()["defs"] = defs
    return defs


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


sys.modules[__name__].__class__ = _CodeLocation

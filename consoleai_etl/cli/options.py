"""Where the command's run options come from: a ``--config`` file, a ``--rules`` file, and
the flags; and a problem with an option, named by the file it came from.

The options are those of the ``settings`` resource, validated by the very model a run
validates them with (``checked_settings``), so that any option of the resource works
through ``--config`` with no code here. A flag wins over the same option in the file; an
option neither sets falls back to its CONSOLEAI_* variable, as in any run.
"""

from __future__ import annotations

from dataclasses import dataclass

from consoleai_etl.cli.arguments import UsageError
from consoleai_etl.core.errors import Key, MigrationError, OptionProblem, key_path
from consoleai_etl.defs.settings import (
    RULES_OPTION,
    SETTINGS_PATH,
    from_rules_file,
    read_yaml,
)

RUN_CONFIG = "resources"  # a file whose top level holds this key is a Dagster run config


def config_file(path: str) -> tuple[dict[str, object], Key]:
    """The run options in the YAML file ``path``, and the key path they are under in it.

    The file is a Dagster run config (``resources: {settings: {config: {...}}}``, what
    ``dagster job execute -c`` takes: the key path is ``SETTINGS_PATH``) or, when its top
    level has no ``resources`` key, the bare mapping of the options (the key path is
    empty). Raises ``UsageError`` naming the file (and the key) for a file that cannot be
    read or is neither, or for a section of run config other than the settings' (the
    command sets the rest)."""
    try:
        data = read_yaml(path, "run options")
    except MigrationError as exc:
        raise UsageError(str(exc)) from None
    if data is None:
        return {}, ()
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of run options, or a run config")
    if RUN_CONFIG not in data:
        return data, ()
    options: dict = data
    for depth, level in enumerate(SETTINGS_PATH):
        if other := sorted(map(str, set(options) - {level})):
            where = key_path((*SETTINGS_PATH[:depth], other[0]))
            raise UsageError(
                f"{path}: {where}: not read by consoleai-etl, which takes only the run options "
                f"under {key_path(SETTINGS_PATH)} (the command sets the rest)"
            )
        inner = options.get(level)
        if inner is None:  # e.g. `config:` with nothing under it: no option set
            return {}, SETTINGS_PATH
        if not isinstance(inner, dict):
            raise UsageError(f"{path}: {key_path(SETTINGS_PATH[: depth + 1])}: expected a mapping")
        options = inner
    return options, SETTINGS_PATH


@dataclass(frozen=True)
class Origins:
    """Which run options came from which file, to name a problem with one of them there:
    an option of ``config`` (``--config``'s file, its options under ``under``) by its key
    path in that file, a casting rule of ``rules`` (``--rules``) by its number there."""

    config: str | None = None
    under: Key = ()
    from_config: frozenset[str] = frozenset()
    rules: str | None = None

    def describe(self, problem: OptionProblem) -> str | None:
        """``problem`` named by the file its option came from; None for an option that no
        file of the command line set (a flag, a variable: the run's own words stand)."""
        option = problem.key[0] if problem.key else None
        if option == RULES_OPTION and self.rules is not None:
            return from_rules_file(self.rules, problem)
        if option in self.from_config:
            return f"{self.config}: {OptionProblem((*self.under, *problem.key), problem.problem)}"
        return None

"""Exception classes of the migration core.

Every error a user can cause (bad file, bad DSN, bad config) is a ``MigrationError`` whose
message is one line that names the object at fault and says what to do, so the CLI and the
Dagster UI can show it without a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# A run option a message tells the user to set, left for the interface to spell: run
# config's key for a Dagster user (``replace_existing: true``), the flag for a command-line
# user (``--replace-existing``). ``option`` writes one; ``in_words`` spells them.
_OPTION = re.compile(r"\u27e8(\w+)(?:: ([^\u27e9]*))?\u27e9")
Spelling = Callable[[str, str | None], str]


def option(name: str, value: str | None = None) -> str:
    """Run option ``name`` (set to ``value``, if given) in a message, spelled later."""
    return f"\u27e8{name}{'' if value is None else ': ' + value}\u27e9"


def config_key(name: str, value: str | None) -> str:
    """The run config's spelling of an option: its key, and the value to set."""
    return name if value is None else f"{name}: {value}"


def in_words(message: str, spelling: Spelling) -> str:
    """``message`` with every ``option`` spelled by ``spelling``."""
    return _OPTION.sub(lambda m: spelling(m[1], m[2]), message)


class MigrationError(Exception):
    """An expected, user-actionable failure; ``str(error)`` is the whole diagnosis, the
    options it names spelled as run config keys; ``template`` keeps them for another
    interface to spell (``in_words``)."""

    @property
    def template(self) -> str:
        return super().__str__()

    def __str__(self) -> str:
        return in_words(self.template, config_key)


class SourceError(MigrationError):
    """The SQLite source cannot be opened or read."""


class TargetError(MigrationError):
    """The PostgreSQL target cannot be reached or changed."""


class ConversionError(ValueError):
    """One value cannot become its planned PostgreSQL type; the row goes to quarantine."""


Key = tuple[str | int, ...]  # a path into the run options: ("casting_rules", 1, "column")


def key_path(key: Key) -> str:
    """``key`` as run config spells a path: ``casting_rules[1].column``, a name that is not
    an identifier quoted (``merge_columns['users.emial']``)."""
    parts = []
    for part in key:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part.isidentifier():
            parts.append(f".{part}")
        else:
            parts.append(f"[{part!r}]")
    return "".join(parts).removeprefix(".")


@dataclass(frozen=True)
class OptionProblem:
    """What is wrong with one run option, and where it is."""

    key: Key
    problem: str

    def __str__(self) -> str:
        return f"{key_path(self.key)}: {self.problem}" if self.key else self.problem


class OptionError(MigrationError):
    """Run options that cannot be used (an unknown key, a value of the wrong type, a table
    or column the source does not have). Each problem keeps its key apart from its text, so
    that each interface names it in its own words (``describe``): run config by its key
    path, the command line by the file and the rule the option came from."""

    def __init__(
        self, problems: Sequence[OptionProblem], describe: Callable[[OptionProblem], str] = str
    ) -> None:
        self.problems = tuple(problems)
        self.said = tuple(describe(problem) for problem in self.problems)
        super().__init__("; ".join(self.said))

"""Exception classes of the migration core.

Every error a user can cause (bad file, bad DSN, bad config) is a ``MigrationError`` whose
message is one line that names the object at fault and says what to do, so the CLI and the
Dagster UI can show it without a traceback.
"""


class MigrationError(Exception):
    """An expected, user-actionable failure; ``str(error)`` is the whole diagnosis."""


class SourceError(MigrationError):
    """The SQLite source cannot be opened or read."""


class TargetError(MigrationError):
    """The PostgreSQL target cannot be reached or changed."""


class ConversionError(ValueError):
    """One value cannot become its planned PostgreSQL type; the row goes to quarantine."""

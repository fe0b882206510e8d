"""The CLI's console logger: one line per event, errors without Python stack traces.

Bad input already produces a one-line diagnosis; Dagster's default console logger would
print a stack trace under it. The full trace is still in the run's event log (web UI).
"""

import logging
import sys

import dagster as dg

STACK_MARKER = "\nStack Trace:"


def console_config(log_level: str) -> dict[str, object]:
    """Run config that selects this logger at ``log_level`` (job loggers only run when
    configured)."""
    return {"loggers": {"console": {"config": {"log_level": log_level}}}}


# The jobs' default run config: every event from INFO up.
CONCISE_CONSOLE = console_config("INFO")


class ConciseFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s - %(levelname)s - %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage().split(STACK_MARKER, 1)[0]
        record.message = " ".join(
            line.strip() for line in record.message.splitlines() if line.strip()
        )
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        return self.formatMessage(record)  # no exc_info/stack_info: those stay in the event log


@dg.logger(
    config_schema={"log_level": dg.Field(str, is_required=False, default_value="INFO")},
    description="One line per event on stderr; stack traces stay in the event log.",
)
def concise_console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.getLogger("consoleai_etl.console")
    logger.setLevel(init_context.logger_config["log_level"])
    logger.propagate = False
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(ConciseFormatter())
        logger.addHandler(handler)
    return logger

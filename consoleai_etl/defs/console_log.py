"""The CLI's console logger: one line per event, errors without Python stack traces.

Bad input already produces a one-line diagnosis; Dagster's default console logger would
print a stack trace under it. The full trace is still in the run's event log (web UI).
"""

import logging
import sys

import dagster as dg
from dagster._core.log_manager import LOG_RECORD_METADATA_ATTR

STACK_MARKER = "\nStack Trace:"


def console_config(log_level: str, *, failures: bool = True) -> dict[str, object]:
    """Run config that selects this logger at ``log_level`` (job loggers only run when
    configured); without ``failures``, for a caller that tells the run's end itself. The
    jobs' default config leaves ``failures`` out: Dagster checks it against its own console
    logger's schema, which has no such key, when the job is defined."""
    config: dict[str, object] = {"log_level": log_level}
    if not failures:
        config["failures"] = False
    return {"loggers": {"console": {"config": config}}}


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


# Events that say again what a failed step said: the run's failure, and each step the
# failure left unrun ("Dependencies for step ... failed ... Not executing", ten lines for a
# refused preflight).
_ECHOES = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
_NOT_RUN = "Dependencies for step "


def _not_an_echo(record: logging.LogRecord) -> bool:
    meta = getattr(record, LOG_RECORD_METADATA_ATTR, None) or {}
    event = meta.get("dagster_event")
    if event is not None and event.event_type in _ECHOES:
        return False
    return not str(meta.get("orig_message", "")).startswith(_NOT_RUN)


@dg.logger(
    config_schema={
        "log_level": dg.Field(str, is_required=False, default_value="INFO"),
        "failures": dg.Field(
            bool,
            is_required=False,
            default_value=True,
            description="Print the step and run failure events; false for a caller that "
            "prints why the run failed itself (consoleai-etl), so it is said once.",
        ),
    },
    description="One line per event on stderr; stack traces stay in the event log.",
)
def concise_console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.getLogger("consoleai_etl.console")
    logger.setLevel(init_context.logger_config["log_level"])
    logger.propagate = False
    for handler in logger.handlers:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ConciseFormatter())
    if not init_context.logger_config["failures"]:
        handler.addFilter(_not_an_echo)
    logger.addHandler(handler)
    return logger

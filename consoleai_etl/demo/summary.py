"""Print where the latest migration report is and its verdict (used by `make demo`), and
that the embedded PostgreSQL is left running, when the demo used it.

python -m consoleai_etl.demo.summary reports/latest.json
"""

import json
import sys
from pathlib import Path

from consoleai_etl.core.run.report import MigrationReport, next_steps
from consoleai_etl.demo.embedded import notice

# `make demo` runs the Dagster job: the option is the settings resource's, set in the run
# config or, for `make demo`, by its variable.
ALLOW_DIVERGENCE = (
    "allow_divergence: true in the run config (make demo: CONSOLEAI_ALLOW_DIVERGENCE=true)"
)


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "reports/latest.json")
    if not path.is_file():
        print(f"no report at {path}: the run stopped before writing one (see the log above)")
        return 1
    report = MigrationReport.from_dict(json.loads(path.read_text()))
    totals = report.totals
    print(
        f"\n{report.what} {report.status.upper()}{' (DRY RUN)' if report.dry_run else ''}: "
        f"{totals['loaded_rows']:,} of {totals['source_rows']:,} rows {report.loaded_as}, "
        f"{totals['quarantined_rows']:,} quarantined, "
        f"{totals['failed_checks']} of {totals['checks']} checks failed"
    )
    for reason in report.reasons:
        print(f"  - {reason}")
    for step in next_steps(report, ALLOW_DIVERGENCE):
        print(step)
    print(f"report: {path.with_suffix('.html')} (and {path.with_suffix('.md')}, {path})")
    if line := notice():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

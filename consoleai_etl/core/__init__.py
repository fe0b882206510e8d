"""Framework-free migration core: introspect, plan, convert, load, verify, report.

Nothing in this package imports Dagster; the orchestration layer in ``consoleai_etl`` wraps it.
"""

"""The ``consoleai-etl`` command: the Dagster jobs, run in this process, with a terminal view.

``main`` reads the arguments and turns them into the job's run config, ``job`` runs
``legacy_migration_job`` or ``consistency_check_job`` in the Dagster instance, ``progress``
draws a bar per table while it runs (on a terminal), and ``summary`` prints the table the
run's report file holds.
"""

"""Everything written to PostgreSQL: connections, DDL, keys and foreign keys, the
``consoleai_etl`` bookkeeping tables (``bookkeeping`` is their only writer), promotion and views.
"""

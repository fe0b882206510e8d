"""The Dagster layer: resources, the table assets with their checks, the report asset and
the jobs. ``consoleai_etl.definitions`` wires them; nothing here migrates by itself.
"""

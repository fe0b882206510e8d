"""Reading the legacy SQLite file: opening it read-only, one snapshot of a live source,
the catalog of its schema, and the one row reader every pass goes through.
"""

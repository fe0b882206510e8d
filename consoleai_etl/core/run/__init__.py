"""A migration run as plain functions: preflight and locks, loading one table, staging
tables two at a time, the run's steps and its report.
"""

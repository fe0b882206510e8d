"""Turning source values into PostgreSQL's binary COPY: converters, column codecs,
column-at-a-time forms, COPY tuples and their hashes, and the compiled load stream.
"""

"""The checks that prove a table arrived whole and unchanged: one registry of checks,
content checksums and the divergence locator.
"""

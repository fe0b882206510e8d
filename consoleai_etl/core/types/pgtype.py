"""``PgType``: a column's PostgreSQL type, as the planner, the encoders and the merge see it.

The bottom of the type stack (nothing here imports the rest of the package). ``kind`` is how
values travel and are hashed: one of the load's wire kinds (``WIRE_KINDS``), each with its
binary COPY form, its compiled fast path and its canonical text. A type of a registered
family (``core/types``: uuid, inet, interval, smallint, real, char(n), arrays, enums,
domains...) travels as one of those kinds (``staged_sql``), its values already converted to
exactly the text or number the type holds, and the staged column is then retyped in place
(``ALTER ... TYPE``): the checks read the retyped column, so the checksum compares the
source's values with the target type's own output.
"""

from __future__ import annotations

from dataclasses import dataclass

# The type a column of a family staged as that wire kind starts as.
STAGED_SQL = {"bigint": "bigint", "double": "double precision", "text": "text"}
WIRE_KINDS = (
    "bigint", "double", "numeric", "text", "bytea", "boolean", "date", "timestamp",
    "timestamptz", "jsonb",
)  # fmt: skip


@dataclass(frozen=True)
class PgType:
    kind: str  # wire kind: bigint, double, numeric, text, bytea, boolean, date, ...
    sql: str  # the type as written in DDL
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    # A registered family (``core/types``) staged as ``kind`` and retyped to ``sql`` after
    # the COPY; None for the wire kinds' own types.
    family: str | None = None
    # The family's own facts: an enum's labels, an array's element type, a domain's base.
    detail: tuple = ()
    staged: str | None = None  # the type the COPY fills, when the family retypes it after

    @property
    def staged_sql(self) -> str:
        """The type the staged column is created as, before any retyping."""
        return self.staged or self.sql

    @property
    def retyped(self) -> bool:
        return self.staged is not None

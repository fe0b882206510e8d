"""uuid: from text in any form PostgreSQL reads (hyphens or not, braces, any case) and
from 16-byte BLOBs (applications that store the raw bytes); sent as uuid_out prints it."""

from __future__ import annotations

import uuid

from consoleai_etl.core.encode.convert import refuse
from consoleai_etl.core.source.connection import InvalidText
from consoleai_etl.core.types.family import Family, fixed, retyped


def to_uuid(value: object) -> str:
    if type(value) is bytes:
        if len(value) != 16:
            raise refuse(value, "uuid", "a uuid BLOB has 16 bytes")
        return str(uuid.UUID(bytes=value))
    if type(value) is not str or isinstance(value, InvalidText):
        raise refuse(value, "uuid")
    text = value.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    digits = text.replace("-", "")
    # PostgreSQL takes a hyphen only after a group of four digits, never two in a row.
    groups = text.split("-")
    if len(digits) != 32 or any(len(g) % 4 for g in groups[:-1]) or "" in groups:
        raise refuse(value, "uuid", "not 32 hexadecimal digits")
    try:
        return str(uuid.UUID(hex=digits))
    except ValueError:
        raise refuse(value, "uuid", "not 32 hexadecimal digits") from None


FAMILIES = (
    Family(
        "uuid", names=("uuid",), takes=frozenset({"text", "blob"}),
        **retyped("uuid", "text", fixed(to_uuid)),
    ),
)  # fmt: skip

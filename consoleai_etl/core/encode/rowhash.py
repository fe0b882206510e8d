"""The row hash in pure Python, for installs without the compiled extension.

It mirrors ``_rowcopy.c``'s ``row_hash`` bit for bit: each binary COPY tuple becomes the
row's ``record_send`` form (column count, then each column's type oid and the COPY
field), hashed with PostgreSQL's ``hash_bytes_extended`` (Bob Jenkins' lookup3, seed 0),
plus 31 as ``hash_array_extended`` adds for a one-element array. The checksum check
compares these hashes with PostgreSQL's, so nothing but bit-identical will do.

lookup3 one row at a time in Python costs tens of microseconds per row. Instead the rows
of a batch are hashed side by side: rows with the same number of 12-byte blocks are
packed into one Python integer per state word, one 64-bit lane per row (32 bits of value,
32 guard bits that catch carries and rotated-out bits), so each step of the mix is a
handful of big-integer operations over the whole group.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

M32 = 0xFFFFFFFF
M64 = 2**64 - 1
_LENGTH = struct.Struct(">i")


def _records(data: bytes | bytearray, ends: Sequence[int], oids: Sequence[int]) -> list[bytes]:
    """Each row's ``record_send`` form, from the COPY tuples ending at ``ends`` in ``data``."""
    head = len(oids).to_bytes(4, "big")
    tags = [oid.to_bytes(4, "big") for oid in oids]
    unpack = _LENGTH.unpack_from
    records, start = [], 0
    try:
        for end in ends:
            parts, at = [head], start + 2  # past the tuple's 16-bit field count
            for tag in tags:
                n = unpack(data, at)[0]
                after = at + 4 + n if n > 0 else at + 4  # -1 (NULL) has no payload
                parts.append(tag)
                parts.append(data[at:after])
                at = after
            if at != end:
                raise ValueError("a COPY tuple does not match its column count")
            records.append(b"".join(parts))
            start = end
    except struct.error:
        raise ValueError("a COPY tuple runs past the data") from None
    return records


class _Lanes:
    """Arithmetic mod 2**32 on many 32-bit words at once: one 64-bit lane per row."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.mask = int.from_bytes(b"\xff\xff\xff\xff\x00\x00\x00\x00" * count, "little")
        self.one = self.mask // M32  # 1 in every lane

    def pack(self, values: Sequence[int]) -> int:
        return int.from_bytes(struct.pack(f"<{len(values)}Q", *values), "little")

    def gather(self, blob: bytes, stride: int, offset: int) -> int:
        """The little-endian 32-bit word at ``offset`` of each ``stride``-byte record."""
        lanes = bytearray(8 * self.count)
        for k in range(4):
            lanes[k::8] = blob[offset + k :: stride]
        return int.from_bytes(lanes, "little")

    def sub(self, x: int, y: int) -> int:
        return (x + (y ^ self.mask) + self.one) & self.mask

    def rot(self, x: int, k: int) -> int:
        return ((x << k) | (x >> (32 - k))) & self.mask

    def mix(self, a: int, b: int, c: int) -> tuple[int, int, int]:
        m, sub, rot = self.mask, self.sub, self.rot
        a = sub(a, c) ^ rot(c, 4)
        c = (c + b) & m
        b = sub(b, a) ^ rot(a, 6)
        a = (a + c) & m
        c = sub(c, b) ^ rot(b, 8)
        b = (b + a) & m
        a = sub(a, c) ^ rot(c, 16)
        c = (c + b) & m
        b = sub(b, a) ^ rot(a, 19)
        a = (a + c) & m
        c = sub(c, b) ^ rot(b, 4)
        b = (b + a) & m
        return a, b, c

    def final(self, a: int, b: int, c: int) -> tuple[int, int]:
        sub, rot = self.sub, self.rot
        c = sub(c ^ b, rot(b, 14))
        a = sub(a ^ c, rot(c, 11))
        b = sub(b ^ a, rot(a, 25))
        c = sub(c ^ b, rot(b, 16))
        a = sub(a ^ c, rot(c, 4))
        b = sub(b ^ a, rot(a, 14))
        c = sub(c ^ b, rot(b, 24))
        return b, c


def _hash_group(records: Sequence[bytes], blocks: int) -> list[int]:
    """hash_bytes_extended of records that all have ``blocks`` whole 12-byte blocks (and a
    tail of 0-11 bytes), each zero-padded to ``blocks + 1`` blocks."""
    lanes = _Lanes(len(records))
    stride = 12 * (blocks + 1)
    blob = b"".join(r.ljust(stride, b"\x00") for r in records)
    a = b = c = lanes.pack([(0x9E3779B9 + len(r) + 3923095) & M32 for r in records])
    m = lanes.mask
    for block in range(blocks + 1):
        at = 12 * block
        a = (a + lanes.gather(blob, stride, at)) & m
        b = (b + lanes.gather(blob, stride, at + 4)) & m
        if block == blocks:  # the tail: its c bytes go in above c's lowest byte
            c = (c + (lanes.gather(blob, stride, at + 8) << 8)) & m
            break
        c = (c + lanes.gather(blob, stride, at + 8)) & m
        a, b, c = lanes.mix(a, b, c)
    b, c = lanes.final(a, b, c)
    packed = ((b << 32) | c).to_bytes(8 * len(records), "little")
    return list(struct.unpack(f"<{len(records)}Q", packed))


def row_hashes(
    data: bytes | bytearray, ends: Sequence[int], oids: Sequence[int]
) -> tuple[int, ...]:
    """Each row's hash (signed, as PostgreSQL shows it), like ``_rowcopy.row_hashes``: the
    tuple of row ``r`` ends at ``ends[r]`` in ``data``."""
    records = _records(data, ends, oids)
    groups: dict[int, list[int]] = {}
    for row, record in enumerate(records):
        groups.setdefault(len(record) // 12, []).append(row)
    hashes = [0] * len(records)
    for blocks, rows in groups.items():
        for row, value in zip(rows, _hash_group([records[r] for r in rows], blocks), strict=True):
            value = (value + 31) & M64
            hashes[row] = value - 2**64 if value >= 2**63 else value
    return tuple(hashes)

"""inet, cidr and macaddr: from text, sent as their ``::text`` casts print them (the form
the checksum reads back).

inet keeps an address's host bits, cidr refuses them (as PostgreSQL does); both print
``/n``; IPv6 is
printed as PostgreSQL's ``inet_net_ntop`` does it (longest run of two or more zero groups
compressed, IPv4-mapped and -compatible addresses with a dotted quad). macaddr takes the
six forms PostgreSQL reads and prints ``08:00:2b:01:02:03``.
"""

from __future__ import annotations

import ipaddress
import re

from consoleai_etl.core.encode.convert import refuse
from consoleai_etl.core.source.connection import InvalidText
from consoleai_etl.core.types.family import Family, fixed, retyped


def _text(value: object, target: str) -> str:
    if type(value) is not str or isinstance(value, InvalidText):
        raise refuse(value, target)
    return value.strip()


def _ipv6(address: ipaddress.IPv6Address) -> str:
    """``inet_net_ntop``'s IPv6 form: an IPv4-mapped address, or an IPv4-compatible one
    (96 zero bits, then a non-zero 7th group), ends in a dotted quad; otherwise Python's
    compressed form, which follows the same rules."""
    words = address.packed
    if words[:10] == bytes(10) and words[10:12] == b"\xff\xff":
        return "::ffff:" + str(ipaddress.IPv4Address(words[12:]))
    if words[:12] == bytes(12) and words[12:14] != bytes(2):
        return "::" + str(ipaddress.IPv4Address(words[12:]))
    return address.compressed


def _address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return _ipv6(address) if address.version == 6 else str(address)


def to_inet(value: object) -> str:
    text = _text(value, "inet")
    if "%" in text:
        raise refuse(value, "inet", "an IPv6 zone, which PostgreSQL does not hold")
    try:
        interface = ipaddress.ip_interface(text)
    except ValueError:
        raise refuse(value, "inet", "not an IP address") from None
    return f"{_address(interface.ip)}/{interface.network.prefixlen}"


def to_cidr(value: object) -> str:
    text = _text(value, "cidr")
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        why = (
            "has bits set to the right of its mask"
            if "host bits" in str(exc)
            else ("not an IP network")
        )
        raise refuse(value, "cidr", why) from None
    return f"{_address(network.network_address)}/{network.prefixlen}"


_MAC = [
    re.compile(p)
    for p in (
        r"^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})"
        r"[:-]([0-9a-f]{2})$",
        r"^([0-9a-f]{6})[:-]?([0-9a-f]{6})$",
        r"^([0-9a-f]{4})[.-]([0-9a-f]{4})[.-]([0-9a-f]{4})$",
    )
]


def to_macaddr(value: object) -> str:
    text = _text(value, "macaddr").lower()
    for pattern in _MAC:
        match = pattern.match(text)
        # One separator throughout, as PostgreSQL's six accepted forms have.
        if match and len(set(re.sub(r"[0-9a-f]", "", text))) <= 1:
            digits = "".join(match.groups())
            return ":".join(digits[i : i + 2] for i in range(0, 12, 2))
    raise refuse(value, "macaddr", "not a MAC address")


_TEXT = frozenset({"text"})
FAMILIES = (
    Family("inet", names=("inet",), takes=_TEXT, **retyped("inet", "text", fixed(to_inet))),
    Family("cidr", names=("cidr",), takes=_TEXT, **retyped("cidr", "text", fixed(to_cidr))),
    Family(
        "macaddr", names=("macaddr",), takes=_TEXT, **retyped("macaddr", "text", fixed(to_macaddr))
    ),
)

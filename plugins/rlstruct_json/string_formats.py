"""Checkers for the JSON Schema ``format`` values the json-schema task verifies.

Written here (not taken from ``jsonschema``'s optional extras) so the result does not depend on
which extras happen to be installed. Each checker takes a string and returns a bool, in linear
time; they follow the RFCs closely enough for generated data, not to the last corner case.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from typing import Callable

_DATE = re.compile(r"\A([0-9]{4})-([0-9]{2})-([0-9]{2})\Z")
_TIME = re.compile(
    r"\A([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))\Z"
)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"\A{_LABEL}(?:\.{_LABEL})*\Z")
_EMAIL_LOCAL = re.compile(r"\A[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_URI = re.compile(r"\A([A-Za-z][A-Za-z0-9+.-]*):([^\s<>\"{}|\\^`]*)\Z")
_UUID = re.compile(r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")


def is_date(text: str) -> bool:
    """RFC 3339 full-date, e.g. ``2024-02-29`` (a real calendar day)."""
    match = _DATE.match(text)
    if not match:
        return False
    try:
        datetime.date(*(int(part) for part in match.groups()))
    except ValueError:
        return False
    return True


def is_time(text: str) -> bool:
    """RFC 3339 full-time with an offset, e.g. ``09:30:00Z`` or ``09:30:00.5+02:00``."""
    match = _TIME.match(text)
    if not match:
        return False
    hour, minute, second = (int(part) for part in match.group(1, 2, 3))
    if hour > 23 or minute > 59 or second > 60:
        return False
    if match.group(4):
        if int(match.group(5)) > 23 or int(match.group(6)) > 59:
            return False
    return True


def is_date_time(text: str) -> bool:
    """RFC 3339 date-time, e.g. ``2024-05-01T09:30:00Z`` (``T``, ``t`` or a space between)."""
    if len(text) < 20 or text[10] not in "Tt ":
        return False
    return is_date(text[:10]) and is_time(text[11:])


def is_hostname(text: str) -> bool:
    """RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens."""
    return len(text) <= 253 and bool(_HOSTNAME.match(text))


def is_email(text: str) -> bool:
    """``local@domain`` with an RFC 5322 dot-atom local part and a host name of 2+ labels."""
    if len(text) > 254 or text.count("@") != 1:
        return False
    local, domain = text.split("@")
    return (
        0 < len(local) <= 64
        and bool(_EMAIL_LOCAL.match(local))
        and "." in domain
        and is_hostname(domain)
    )


def is_uri(text: str) -> bool:
    """Absolute URI (RFC 3986): a scheme, ``:``, no white space; ``//host`` required for http(s)."""
    match = _URI.match(text)
    if not match:
        return False
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme in ("http", "https"):
        if not rest.startswith("//"):
            return False
        host = rest[2:].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
        host = host.rsplit("@", 1)[-1].split(":", 1)[0]
        return is_hostname(host) or _is_ip(host.strip("[]"))
    return bool(rest)


def _is_ip(text: str) -> bool:
    return is_ipv4(text) or is_ipv6(text)


def is_ipv4(text: str) -> bool:
    """Dotted-quad IPv4 address (no leading zeros)."""
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def is_ipv6(text: str) -> bool:
    """IPv6 address in any RFC 4291 text form."""
    if "%" in text:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def is_uuid(text: str) -> bool:
    """Hyphenated UUID, 8-4-4-4-12 hexadecimal digits."""
    return bool(_UUID.match(text))


FORMAT_CHECKS: dict[str, Callable[[str], bool]] = {
    "date": is_date,
    "time": is_time,
    "date-time": is_date_time,
    "email": is_email,
    "hostname": is_hostname,
    "uri": is_uri,
    "ipv4": is_ipv4,
    "ipv6": is_ipv6,
    "uuid": is_uuid,
}
"""The ``format`` values that are checked; any other ``format`` is an annotation only."""

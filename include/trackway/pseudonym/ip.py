"""IP truncation: keep the network, drop the host (/24 for IPv4, /48 for IPv6).

Addresses that carry an IPv4 address inside IPv6 are truncated as that IPv4 address:
IPv4-mapped (``::ffff:203.0.113.7``) and 6to4 (``2002:cb00:7107::/16``, whose next 32 bits
are the IPv4 address, so /48 alone would keep it whole). Zone ids (``%eth0``) are dropped.
"""

from __future__ import annotations

import ipaddress

_V6_KEEP = (1 << 128) - (1 << 80)  # the first 48 bits
_V4_KEEP = 0xFFFFFF00
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_cache: dict[str, str | None] = {}
_CACHE_MAX = 4096


def _truncate(text: str) -> str | None:
    try:
        address = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            address = mapped
        elif address in _SIX_TO_FOUR:
            # 2002:AABB:CCDD::/48 holds the whole IPv4 address AA.BB.CC.DD: keep its /24 only.
            return str(ipaddress.IPv6Address(int(address) & ((1 << 128) - (1 << 88))))
        else:
            return str(ipaddress.IPv6Address(int(address) & _V6_KEEP))
    return str(ipaddress.IPv4Address(int(address) & _V4_KEEP))


def truncate_ip(text: str) -> str | None:
    """The address with its host part zeroed, or None when ``text`` is not one IP address."""
    found = _cache.get(text, _cache)
    if found is not _cache:
        return found  # type: ignore[return-value]
    result = _truncate(text)
    if len(_cache) >= _CACHE_MAX:  # addresses repeat within a burst; bounded, never grows
        _cache.clear()
    _cache[text] = result
    return result

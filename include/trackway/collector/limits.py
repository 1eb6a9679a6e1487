"""Token buckets for the collector's rate limits, kept per client address so one client cannot starve others.

Two limits use them (http_api.py): events per (write key, client address),
and failed authentications per client address. Both are decided from the
request's headers, before its body is read, and both are held by each
worker on its own: a client that spreads its requests over several
connections (so several workers) gets up to that many times the rate. They
guard against one client flooding; they are not an exact quota.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Hashable

_PRUNE_EVERY = 10.0  # seconds between sweeps of idle buckets


class RateLimiter:
    """Token buckets by name: ``rate`` tokens/s, up to ``burst``.

    ``take`` lets a request pass while its bucket holds a token and may leave
    it in debt (``charge``): a batch bigger than the burst passes when the
    bucket is full, so the long-run rate holds and a big batch is never
    refused forever. Memory is bounded: a bucket that has refilled is the same
    as no bucket and is dropped, and past ``max_buckets`` the least recently
    used go first (so many addresses cost memory up to a cap, not without end).
    """

    def __init__(self, rate: float, burst: float, max_buckets: int = 100_000) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.max_buckets = max_buckets
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # name -> (tokens, when); oldest use first
        self._next_prune = time.monotonic() + _PRUNE_EVERY

    def _tokens(self, name: Hashable, now: float) -> float:
        tokens, last = self._buckets.get(name, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate)

    def _store(self, name: Hashable, tokens: float, now: float) -> None:
        self._buckets.pop(name, None)  # re-inserted at the end: the dict stays in order of last use
        self._buckets[name] = (tokens, now)
        if now >= self._next_prune or len(self._buckets) > self.max_buckets:
            self._prune(now)

    def wait(self, name: Hashable) -> float:
        """0 when ``name`` holds a token now, else the seconds until it will; takes nothing."""
        tokens = self._tokens(name, time.monotonic())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def take(self, name: Hashable, amount: float = 1.0) -> float:
        """Take ``amount`` (debt allowed) if ``name`` holds a token: 0; else the seconds until it will."""
        now = time.monotonic()
        tokens = self._tokens(name, now)
        if tokens < 1.0:
            return (1.0 - tokens) / self.rate
        self._store(name, tokens - amount, now)
        return 0.0

    def charge(self, name: Hashable, amount: float) -> float:
        """Take ``amount`` whatever the bucket holds (into debt); the tokens left."""
        now = time.monotonic()
        tokens = self._tokens(name, now) - amount
        self._store(name, tokens, now)
        return tokens

    def __len__(self) -> int:
        return len(self._buckets)

    def _prune(self, now: float) -> None:
        self._next_prune = now + _PRUNE_EVERY
        full = [
            name for name, (tokens, last) in self._buckets.items() if tokens + (now - last) * self.rate >= self.burst
        ]
        for name in full:
            del self._buckets[name]
        if len(self._buckets) > self.max_buckets:  # down to 90%: the next sweep is 10% of the cap away
            for name in list(self._buckets)[: len(self._buckets) - self.max_buckets * 9 // 10]:
                del self._buckets[name]


def address_bucket(address: str) -> str:
    """The name a client address is limited under: itself, or its /64 for IPv6 (one subscriber's block).

    An IPv6 client typically holds a whole /64 and could take a fresh address
    for every request; its /64 is what identifies it.
    """
    if ":" not in address:
        return address
    try:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    except ValueError:
        return address

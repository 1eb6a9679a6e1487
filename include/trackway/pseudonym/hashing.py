"""Keyed pseudonyms: ``h1:<key id>:<26 base32 characters>``.

``h1`` is HMAC-SHA256 truncated to its first 128 bits (RFC 2104 section 5 allows truncating
to half the output or more), in lower-case RFC 4648 base32 without padding. HMAC with a
secret key, not a plain or salted hash: without the key nobody can test guesses (Snowplow
#3648: unsalted hashes of numeric ids were brute-forced); guessing depends on the key, not
on the output length, and 128 bits make an accidental collision between two of a billion
values a 1-in-10^21 event. The short form matters: the collector writes several per event.
The key id in the output says which key made it, so a rotation never mixes pseudonyms silently.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from trackway.pseudonym.keyring import Key, Keyring

PREFIX = "h1"
_PSEUDONYM = re.compile(r"^h1:[A-Za-z0-9][A-Za-z0-9_.-]{0,31}:[a-z2-7]{26}$")


def canonical_text(value: Any) -> bytes:
    """The bytes that are hashed: text as is, other JSON values as compact JSON (keys sorted).

    So ``42`` and ``"42"`` give the same pseudonym (a user id sent as number or text).
    """
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return json.dumps(value).encode("utf-8")


def is_pseudonym(value: Any) -> bool:
    """True for a value this module made (hashing it again would break joins)."""
    return (
        isinstance(value, str) and value.startswith("h1:") and len(value) <= 100 and _PSEUDONYM.match(value) is not None
    )


def hmac_sha256(key: Key, message: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104) from the key's precomputed pads; equal to ``hmac.digest(secret, message, "sha256")``."""
    inner, outer = key.hmac_pads()
    state = inner.copy()
    state.update(message)
    result = outer.copy()
    result.update(state.digest())
    return result.digest()


def pseudonymise(value: Any, keyring: Keyring, at: datetime | str | None = None) -> Any:
    """``value`` as ``h1:<key id>:<26 base32>`` under the key valid at ``at`` (default: now).

    None stays None and a pseudonym stays as it is. Raises NoValidKey when no key is valid then.
    """
    if value is None or is_pseudonym(value):
        return value
    return pseudonym_with(keyring.key_at(at), value)


# Lower-case RFC 4648 base32 of 128 bits, two characters (10 bits) per lookup: 26 characters are 130 bits,
# the last two zero, as base64.b32encode pads them. A third of the stdlib's time, which is pure Python in
# 3.11 and was two thirds of a pseudonym's cost (the collector writes several per event; issue 20).
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_BASE32_PAIRS = tuple(a + b for a in _BASE32 for b in _BASE32)
_PAIR_SHIFTS = tuple(range(120, -1, -10))


def base32_128(digest: bytes) -> str:
    """``base64.b32encode(digest)[:26].decode().lower()`` for 16 bytes."""
    bits = int.from_bytes(digest, "big") << 2
    return "".join([_BASE32_PAIRS[(bits >> shift) & 1023] for shift in _PAIR_SHIFTS])


def pseudonym_with(key: Key, value: Any) -> str:
    """The pseudonym of a (non-null) ``value`` under ``key``, for callers that chose the key already."""
    return f"{PREFIX}:{key.id}:{base32_128(hmac_sha256(key, canonical_text(value))[:16])}"

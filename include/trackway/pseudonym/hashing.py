"""Keyed pseudonyms: ``h1:<key id>:<hex HMAC-SHA256>``.

HMAC with a secret key, not a plain or salted hash: without the key nobody can test
guesses (Snowplow #3648: unsalted hashes of numeric ids were brute-forced). The key id
in the output says which key made it, so a rotation never mixes pseudonyms silently.
"""

from __future__ import annotations

import hmac
import json
import re
from datetime import datetime
from typing import Any

from trackway.pseudonym.keyring import Keyring

PREFIX = "h1"
_PSEUDONYM = re.compile(r"^h1:[A-Za-z0-9][A-Za-z0-9_.-]{0,31}:[0-9a-f]{64}$")


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
    return isinstance(value, str) and len(value) <= 100 and _PSEUDONYM.match(value) is not None


def pseudonymise(value: Any, keyring: Keyring, at: datetime | str | None = None) -> Any:
    """``value`` as ``h1:<key id>:<64 hex>`` under the key valid at ``at`` (default: now).

    None stays None and a pseudonym stays as it is. Raises NoValidKey when no key is valid then.
    """
    if value is None or is_pseudonym(value):
        return value
    key = keyring.key_at(at)
    digest = hmac.digest(key.secret, canonical_text(value), "sha256").hex()
    return f"{PREFIX}:{key.id}:{digest}"

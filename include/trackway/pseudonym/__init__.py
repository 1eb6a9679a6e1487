"""Keyed pseudonyms, IP truncation and deterministic sampling: pure functions, no I/O but the keyring file.

The public API, used by the collector (before anything is stored) and by erasure:

* ``Keyring`` / ``load_keyring(spec)`` / ``keyring_from_settings(settings)``: the secret keys,
  each with an id and a validity window (``TRACKWAY_PSEUDONYM_KEYS``: a file, or the document itself).
* ``pseudonymise(value, keyring, at=None)`` -> ``"h1:<key id>:<26 base32>"``: HMAC-SHA256 (first 128 bits) under the key
  valid at ``at`` (default: now); the same value and key give the same pseudonym, so joins work
  within a key's window, and deleting a key makes its pseudonyms unlinkable.
* ``is_pseudonym(value)``: already a pseudonym (left as it is, so applying twice changes nothing).
* ``truncate_ip(text)``: /24 for IPv4, /48 for IPv6; None when the text is not an address.
* ``sampled(unit_value, rate)``: the same unit gets the same answer, in every event and process.

See docs/privacy.md.
"""

from trackway.pseudonym.hashing import canonical_text, is_pseudonym, pseudonymise
from trackway.pseudonym.ip import truncate_ip
from trackway.pseudonym.keyring import (
    Key,
    Keyring,
    KeyringError,
    NoValidKey,
    append_key,
    keyring_from_settings,
    load_keyring,
    new_key,
)
from trackway.pseudonym.sampling import sampled

__all__ = [
    "Key",
    "Keyring",
    "KeyringError",
    "NoValidKey",
    "append_key",
    "canonical_text",
    "is_pseudonym",
    "keyring_from_settings",
    "load_keyring",
    "new_key",
    "pseudonymise",
    "sampled",
    "truncate_ip",
]

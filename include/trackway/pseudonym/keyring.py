"""The pseudonymisation keyring: secret keys, each with an id and a validity window.

``TRACKWAY_PSEUDONYM_KEYS`` is a path to a keyring file, or the keyring document itself
(anything that starts with ``{``, ``[`` or ``keys:``, or spans several lines). The document
is YAML (JSON is YAML too)::

    keys:
      - id: k2026q4                      # letters, digits, . _ -; at most 32; shown in every pseudonym
        secret: base64:Zm9v...           # or hex:...; at least 32 bytes once decoded
        valid_from: 2026-10-01T00:00:00Z
        valid_until: 2027-01-01T00:00:00Z  # optional: open-ended without it

A pseudonym is made with the key valid at the event's time; when windows overlap, the key
that became valid last wins, so a new key takes over at its ``valid_from`` without a restart.
Deleting a key from the file makes every pseudonym made with it unlinkable to its input.

No message, repr or log line here ever contains a secret, or the text it was read from
(the text may be the secret itself).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import secrets
import stat
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("trackway.pseudonym")

KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
MIN_SECRET_BYTES = 32
_INLINE_STARTS = ("{", "[", "keys:")


class KeyringError(ValueError):
    """The keyring cannot be used; the message says what to fix and never holds a secret."""


class NoValidKey(KeyringError):
    """No key of the keyring is valid at the time asked for."""


@dataclass(frozen=True)
class Key:
    """One key: its id (public, in every pseudonym), its secret (never shown) and its window."""

    id: str
    secret: bytes = field(repr=False)
    valid_from: datetime
    valid_until: datetime | None = None

    def hmac_pads(self) -> tuple[Any, Any]:
        """SHA-256 states after the HMAC inner and outer key pads (RFC 2104), computed once per key.

        Copying them per value is HMAC-SHA256 without setting the key up again: the collector
        hashes several fields of every event.
        """
        pads = self.__dict__.get("_pads")
        if pads is None:
            block = (hashlib.sha256(self.secret).digest() if len(self.secret) > 64 else self.secret).ljust(64, b"\0")
            pads = (
                hashlib.sha256(bytes(b ^ 0x36 for b in block)),
                hashlib.sha256(bytes(b ^ 0x5C for b in block)),
            )
            object.__setattr__(self, "_pads", pads)
        return pads

    def valid_at(self, moment: datetime) -> bool:
        return self.valid_from <= moment and (self.valid_until is None or moment < self.valid_until)

    def describe(self) -> str:
        until = self.valid_until.isoformat() if self.valid_until else "open-ended"
        return f"{self.id} (valid from {self.valid_from.isoformat()} until {until})"


class Keyring:
    """Keys by validity; ``key_at(moment)`` picks the one to hash with."""

    def __init__(self, keys: Iterable[Key], origin: str = "keyring") -> None:
        self.keys: tuple[Key, ...] = tuple(sorted(keys, key=lambda k: k.valid_from))
        self.origin = origin
        ids = [k.id for k in self.keys]
        duplicate = next((i for i in ids if ids.count(i) > 1), None)
        if duplicate is not None:
            raise KeyringError(f"{origin}: key id {duplicate!r} appears twice; key ids must be unique")
        self._current: tuple[int, Key | None] = (-1, None)

    def __repr__(self) -> str:
        return f"<Keyring {self.origin}: {', '.join(k.id for k in self.keys) or 'no keys'}>"

    __str__ = __repr__

    def __len__(self) -> int:
        return len(self.keys)

    def by_id(self, key_id: str) -> Key | None:
        return next((k for k in self.keys if k.id == key_id), None)

    def key_at(self, moment: datetime | str | None = None) -> Key:
        """The key valid at ``moment`` (default now; ISO text accepted); NoValidKey if none is."""
        if moment is None:
            return self.current()
        when = as_utc(moment, "the time asked for")
        for key in reversed(self.keys):  # the one that became valid last wins
            if key.valid_at(when):
                return key
        raise NoValidKey(
            f"{self.origin}: no key is valid at {when.isoformat()}; add one with "
            "`trackway privacy keys new --id ID --valid-from ...`"
        )

    def current(self) -> Key:
        """The key valid now, looked up once per second (the collector asks for every event)."""
        second = int(time.time())
        cached_second, key = self._current
        if cached_second != second or key is None:
            key = self.key_at(datetime.fromtimestamp(second, UTC))
            self._current = (second, key)
        return key


def as_utc(value: Any, what: str) -> datetime:
    """A timezone-aware UTC datetime from a datetime, a date (midnight UTC) or ISO-8601 text."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise KeyringError(
                f"{what} {value[:40]!r} is not an ISO-8601 date-time; write e.g. 2026-10-01T00:00:00Z"
            ) from None
    else:
        raise KeyringError(f"{what} must be an ISO-8601 date-time, not {type(value).__name__}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _secret(text: Any, where: str) -> bytes:
    if not isinstance(text, str) or ":" not in text:
        raise KeyringError(f"{where}: secret must be 'base64:...' or 'hex:...' text")
    scheme, _, encoded = text.partition(":")
    try:
        if scheme == "hex":
            raw = bytes.fromhex(encoded.strip())
        elif scheme == "base64":
            raw = base64.b64decode(encoded.strip(), validate=True)
        else:
            raise KeyringError(f"{where}: secret must start with 'base64:' or 'hex:'")
    except (ValueError, binascii.Error):
        raise KeyringError(f"{where}: secret is not valid {scheme}") from None
    if len(raw) < MIN_SECRET_BYTES:
        raise KeyringError(
            f"{where}: secret is {len(raw)} bytes; use at least {MIN_SECRET_BYTES} "
            "(`trackway privacy keys new` makes one)"
        )
    return raw


def _key(entry: Any, n: int, origin: str) -> Key:
    where = f"{origin}: key #{n}"
    if not isinstance(entry, Mapping):
        raise KeyringError(f"{where} is not a mapping with id, secret, valid_from (and valid_until)")
    unknown = set(entry) - {"id", "secret", "valid_from", "valid_until"}
    if unknown:
        raise KeyringError(
            f"{where} has unknown fields {sorted(map(str, unknown))}; allowed: id, secret, valid_from, valid_until"
        )
    key_id = entry.get("id")
    if not isinstance(key_id, str) or not KEY_ID.match(key_id):
        raise KeyringError(f"{where}: id must be 1-32 letters, digits, '.', '_' or '-' (e.g. k2026q4)")
    where = f"{origin}: key {key_id!r}"
    if entry.get("valid_from") is None:
        raise KeyringError(f"{where}: valid_from is missing; write e.g. valid_from: 2026-10-01T00:00:00Z")
    valid_from = as_utc(entry["valid_from"], f"{where}: valid_from")
    until = entry.get("valid_until")
    valid_until = None if until is None else as_utc(until, f"{where}: valid_until")
    if valid_until is not None and valid_until <= valid_from:
        raise KeyringError(f"{where}: valid_until must be after valid_from")
    return Key(key_id, _secret(entry.get("secret"), where), valid_from, valid_until)


def parse_keyring(text: str, origin: str) -> Keyring:
    """A keyring from its YAML/JSON document; KeyringError (without the text) if malformed."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        raise KeyringError(f"{origin} is not valid YAML or JSON; see docs/privacy.md for the keyring format") from None
    entries = doc.get("keys") if isinstance(doc, Mapping) else doc
    if not isinstance(entries, list):
        raise KeyringError(f"{origin} needs a 'keys:' list of {{id, secret, valid_from, valid_until}}")
    return Keyring((_key(entry, n, origin) for n, entry in enumerate(entries, start=1)), origin)


def is_inline(spec: str) -> bool:
    """True when TRACKWAY_PSEUDONYM_KEYS holds the document itself rather than a path."""
    text = spec.strip()
    return "\n" in text or text.startswith(_INLINE_STARTS)


def load_keyring(spec: str) -> Keyring:
    """The keyring ``spec`` names: a file path, or the document itself."""
    if is_inline(spec):
        return parse_keyring(spec, "TRACKWAY_PSEUDONYM_KEYS")
    path = Path(spec.strip()).expanduser()
    origin = f"keyring file {path}"
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except OSError as exc:
        raise KeyringError(
            f"TRACKWAY_PSEUDONYM_KEYS: cannot read {origin} ({exc.strerror}); "
            "create it with `trackway privacy keys new --id ID --valid-from DATE --file PATH`"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s can be read by other users; `chmod 600 %s`", origin, path)
    return parse_keyring(text, origin)


def keyring_from_settings(settings: Any) -> Keyring | None:
    """The keyring of ``TRACKWAY_PSEUDONYM_KEYS``, or None when it is not set."""
    spec = settings.pseudonym_keys
    return load_keyring(spec) if spec else None


def new_key(key_id: str, valid_from: datetime | date | str, valid_until: datetime | date | str | None = None) -> Key:
    """A fresh key of 32 random bytes from ``secrets``."""
    if not KEY_ID.match(key_id):
        raise KeyringError(f"key id {key_id[:40]!r}: use 1-32 letters, digits, '.', '_' or '-' (e.g. k2026q4)")
    start = as_utc(valid_from, "--valid-from")
    end = None if valid_until is None else as_utc(valid_until, "--valid-until")
    if end is not None and end <= start:
        raise KeyringError("--valid-until must be after --valid-from")
    return Key(key_id, secrets.token_bytes(MIN_SECRET_BYTES), start, end)


def _entry(key: Key) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": key.id,
        "secret": "base64:" + base64.b64encode(key.secret).decode("ascii"),
        "valid_from": key.valid_from.isoformat().replace("+00:00", "Z"),
    }
    if key.valid_until is not None:
        out["valid_until"] = key.valid_until.isoformat().replace("+00:00", "Z")
    return out


_HEADER = (
    "# Trackway pseudonymisation keyring (TRACKWAY_PSEUDONYM_KEYS). SECRET: never commit, log or share it.\n"
    "# Deleting a key makes every pseudonym made with it unlinkable. See docs/privacy.md.\n"
)


def append_key(path: Path, key: Key) -> Keyring:
    """Add ``key`` to the keyring file at ``path`` (created 0600 if missing); the file is replaced atomically."""
    import yaml

    path = Path(path).expanduser()
    existing = load_keyring(str(path)) if path.exists() else Keyring((), f"keyring file {path}")
    if existing.by_id(key.id) is not None:
        raise KeyringError(f"keyring file {path} already has a key {key.id!r}; choose another --id")
    keyring = Keyring((*existing.keys, key), existing.origin)  # checks the whole ring again
    text = _HEADER + yaml.safe_dump({"keys": [_entry(k) for k in keyring.keys]}, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".keyring-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return keyring

"""The erasure ledger's key: subjects are stored only as HMAC-SHA256 hashes under it.

``TRACKWAY_PRIVACY_LEDGER_KEY`` wherever it is set. On the embedded default (no raw
store and no warehouse configured: everything in ``$TRACKWAY_HOME``) a key is generated
once into ``$TRACKWAY_HOME/privacy/ledger.key`` (mode 0600). Anywhere else a missing key
is an error: without it a ledger could not be matched, and a reload would bring erased
people back (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trackway.config import ConfigError, Settings

KEY_FILE = Path("privacy") / "ledger.key"
_MISSING = (
    "TRACKWAY_PRIVACY_LEDGER_KEY is not set: erasure requests are stored as keyed hashes and every component "
    "(collector, loader, `trackway privacy`) needs the same key; generate one with "
    "python -c 'import secrets; print(secrets.token_hex(32))' and keep it with your backups"
)


@dataclass(frozen=True)
class SubjectKey:
    """A ledger key: hashes ids, names itself by a key id (never the key), and never prints the secret."""

    secret: bytes = field(repr=False)
    _pads: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # HMAC-SHA256 (RFC 2104) with its two keyed states made once, the inner one past the "subject"
        # prefix: each id then costs two state copies, not a new HMAC object (the loader, rewrites and
        # verification hash every distinct id they meet). Same result as hmac.new(secret, b"subject\0" + id).
        block = self.secret if len(self.secret) <= 64 else hashlib.sha256(self.secret).digest()
        block = block.ljust(64, b"\x00")
        inner = hashlib.sha256(bytes(b ^ 0x36 for b in block) + b"subject\x00")
        outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        object.__setattr__(self, "_pads", (inner, outer))

    @property
    def key_id(self) -> str:
        """A public name of the key, stored with each request: a different key is detected, never silently used."""
        return "k" + hmac.new(self.secret, b"trackway ledger key id", hashlib.sha256).hexdigest()[:12]

    def hash(self, value: str) -> str:
        """The subject hash of one id (a userId, an anonymousId): 64 hex characters, HMAC-SHA256."""
        inner, outer = self._pads[0].copy(), self._pads[1].copy()
        inner.update(value.encode("utf-8", "surrogatepass"))
        outer.update(inner.digest())
        return outer.hexdigest()

    def __repr__(self) -> str:
        return f"SubjectKey({self.key_id})"


def _key_file(settings: Settings) -> Path:
    return settings.home / KEY_FILE


def _read_key_file(path: Path) -> SubjectKey:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path} is readable by others (mode {mode:o}); the ledger key must be private: chmod 600 {path}"
        )
    text = path.read_text().strip()
    if len(text) < 32:
        raise ConfigError(f"{path} holds no usable key (shorter than 32 characters); restore it from a backup")
    return SubjectKey(text.encode())


def ledger_key(settings: Settings, *, required: bool = True, create: bool = True) -> SubjectKey | None:
    """The key to hash subjects with; ConfigError (or None when not ``required``) where there is none.

    ``create``: on the embedded default, generate the key file when it is missing.
    """
    configured = settings.privacy_ledger_key
    if configured:
        return SubjectKey(configured.encode())
    if settings.embedded_default:
        path = _key_file(settings)
        if path.exists():
            return _read_key_file(path)
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first
                return _read_key_file(path)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
            return _read_key_file(path)
        if required:
            raise ConfigError(f"the erasure ledger's key {path} is missing; restore it from a backup")
        return None
    if required:
        raise ConfigError(_MISSING)
    return None

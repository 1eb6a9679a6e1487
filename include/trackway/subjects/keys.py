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

    @property
    def key_id(self) -> str:
        """A public name of the key, stored with each request: a different key is detected, never silently used."""
        return "k" + hmac.new(self.secret, b"trackway ledger key id", hashlib.sha256).hexdigest()[:12]

    def hash(self, value: str) -> str:
        """The subject hash of one id (a userId, an anonymousId): 64 hex characters."""
        return hmac.new(
            self.secret, b"subject\x00" + value.encode("utf-8", "surrogatepass"), hashlib.sha256
        ).hexdigest()

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

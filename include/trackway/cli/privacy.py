"""`trackway privacy ...`: the pseudonymisation keyring (argument parsing and printing only).

No command here ever prints a secret: `keys new` writes it to the keyring file only.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from trackway.config import ConfigError, load_settings
from trackway.pseudonym import KeyringError, append_key, load_keyring, new_key
from trackway.pseudonym.keyring import is_inline


def _keyring_file(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    spec = load_settings().pseudonym_keys
    if not spec:
        raise ConfigError("no --file given and TRACKWAY_PSEUDONYM_KEYS is not set; pass --file PATH")
    if is_inline(spec):
        raise ConfigError(
            "TRACKWAY_PSEUDONYM_KEYS holds the keyring itself, not a file path: pass --file PATH, then put the "
            "new key into wherever that keyring is kept"
        )
    return Path(spec.strip())


def _keys_new(args: argparse.Namespace) -> int:
    path = _keyring_file(args.file)
    valid_from = args.valid_from or datetime.now(UTC).replace(microsecond=0).isoformat()
    try:
        key = new_key(args.id, valid_from, args.valid_until)
        keyring = append_key(path, key)
    except KeyringError as exc:
        print(f"trackway privacy keys new: {exc}", file=sys.stderr)
        return 2
    print(f"added key {key.describe()} to {path} ({len(keyring)} key(s)); the secret is only in that file")
    if key.valid_from > datetime.now(UTC):
        print("it takes over for new events at its valid_from; send SIGHUP to a running collector before then")
    else:
        print("send SIGHUP to a running collector to use it now")
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    spec = str(args.file) if args.file else load_settings().pseudonym_keys
    if not spec:
        raise ConfigError("no --file given and TRACKWAY_PSEUDONYM_KEYS is not set")
    try:
        keyring = load_keyring(spec)
    except KeyringError as exc:
        print(f"trackway privacy keys list: {exc}", file=sys.stderr)
        return 2
    try:
        current = keyring.current().id
    except KeyringError:
        current = None
    for key in keyring.keys:
        print(f"{key.describe()}{'  <- current' if key.id == current else ''}")
    if current is None:
        print("no key is valid now: values classified hash are dropped", file=sys.stderr)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    privacy = sub.add_parser(
        "privacy",
        help="personal data: pseudonymisation keys (docs/privacy.md)",
        description="Personal data in Trackway (docs/privacy.md).",
    )
    psub = privacy.add_subparsers(dest="privacy_command", metavar="PRIVACY_COMMAND", required=True)
    add_keys_parsers(psub)


def add_keys_parsers(psub: argparse._SubParsersAction) -> None:
    keys = psub.add_parser(
        "keys",
        help="the pseudonymisation keyring (TRACKWAY_PSEUDONYM_KEYS): add or list keys, never show a secret",
        description="Keys for the `hash` action: HMAC-SHA256 pseudonyms `h1:<key id>:...`, each key with a "
        "validity window. Deleting a key from the file makes its pseudonyms unlinkable.",
    )
    ksub = keys.add_subparsers(dest="keys_command", metavar="KEYS_COMMAND", required=True)
    new = ksub.add_parser(
        "new",
        help="generate a key (32 random bytes) and add it to the keyring file; prints its id, never its secret",
        description="Generate a key with Python's `secrets` and add it to the keyring file (created with mode "
        "0600), replacing the file atomically. Events received from --valid-from on are hashed with it.",
    )
    new.add_argument("--id", required=True, help="key id, shown in every pseudonym, e.g. k2026q4")
    new.add_argument("--valid-from", help="ISO-8601 date or time, UTC when no zone (default: now)")
    new.add_argument("--valid-until", help="ISO-8601 date or time (default: open-ended)")
    new.add_argument("--file", help="the keyring file (default: TRACKWAY_PSEUDONYM_KEYS when it is a path)")
    new.set_defaults(func=_keys_new)
    listing = ksub.add_parser(
        "list",
        help="print each key's id and validity window (never a secret), marking the current one",
        description="Print the keyring's key ids and validity windows; the secrets are never printed.",
    )
    listing.add_argument("--file", help="the keyring file (default: TRACKWAY_PSEUDONYM_KEYS)")
    listing.set_defaults(func=_keys_list)

"""Write keys: parsed from TRACKWAY_WRITE_KEYS and/or the file TRACKWAY_WRITE_KEYS_FILE; never printed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from trackway.config.errors import ConfigError

DEMO_WRITE_KEYS = "demo:trackway-demo-key"


class WriteKeys(dict[str, str]):
    """``{key: source}``; its repr names the sources, never a key (it ends up in reprs and logs)."""

    def __repr__(self) -> str:
        return f"<{len(self)} write key(s) for sources: {', '.join(sorted(set(self.values()))) or 'none'}>"

    __str__ = __repr__


def parse_write_keys(spec: str, what: str = "TRACKWAY_WRITE_KEYS") -> dict[str, str]:
    """Parse ``source:key,source:key`` (commas or new lines; ``#`` comments) into ``{key: source}``.

    A source may have several keys, so a key can be rotated: add the new one,
    move the clients over, then remove the old one. Errors name the entry by
    its position, never by its text: the text may be a key.
    """
    keys = WriteKeys()
    lines = [line.split("#", 1)[0] for line in spec.splitlines()]
    entries = [entry.strip() for entry in ",".join(lines).split(",")]
    for n, item in enumerate((e for e in entries if e), start=1):
        source, sep, key = item.partition(":")
        source, key = source.strip(), key.strip()
        if not sep or not source or not key:
            raise ConfigError(
                f"{what} entry #{n} is not 'source:key'; write e.g. web:abc123,backend:def456 (one per line in a file)"
            )
        if key in keys and keys[key] != source:
            raise ConfigError(f"{what} gives one key to two sources ({keys[key]}, {source})")
        keys[key] = source
    if not keys:
        raise ConfigError(f"{what} is empty; write e.g. web:abc123")
    return keys


def load_write_keys(environ: Mapping[str, str] | None = None) -> tuple[dict[str, str], bool]:
    """The write keys, and whether they are the demo key.

    Read again on SIGHUP by the collector (from the live environment, hence
    the default), so the file is the way to rotate keys without a restart.
    """
    env = os.environ if environ is None else environ
    spec, path = env.get("TRACKWAY_WRITE_KEYS") or None, env.get("TRACKWAY_WRITE_KEYS_FILE") or None
    keys = WriteKeys()
    if spec is not None:
        keys.update(parse_write_keys(spec))
    if path is not None:
        try:
            text = Path(path).expanduser().read_text()
        except OSError as exc:
            raise ConfigError(
                f"TRACKWAY_WRITE_KEYS_FILE={path!r} cannot be read ({exc.strerror}); "
                "point it at a file of source:key lines"
            ) from None
        for key, source in parse_write_keys(text, f"TRACKWAY_WRITE_KEYS_FILE {path}").items():
            if keys.get(key, source) != source:
                raise ConfigError("TRACKWAY_WRITE_KEYS and TRACKWAY_WRITE_KEYS_FILE give one key to two sources")
            keys[key] = source
    if spec is None and path is None:
        return parse_write_keys(DEMO_WRITE_KEYS), True
    return keys, False

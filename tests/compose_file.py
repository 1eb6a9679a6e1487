"""docker-compose.yaml as Docker Compose would render it, without Docker (CI has no engine).

``interpolate`` follows the compose specification as compose-go implements it (what ``docker compose
config`` runs): ``$$`` is a literal ``$``; ``$VAR`` and ``${VAR}`` are the value or empty;
``${VAR:-default}`` applies when unset or empty, ``${VAR-default}`` when unset; ``${VAR:+alt}`` and
``${VAR+alt}`` the other way round; ``${VAR:?message}`` fails when unset or empty, ``${VAR?message}``
when unset. Within one ``${...}`` the operator that comes first wins, and a default may nest others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
# What a required variable renders as in the checks: a value the file cannot have written itself.
SENTINEL = "REQUIRED({})"

# Names the compose file may use before the code has them (none now; for work landing in parts).
ANNOUNCED_COMMANDS: frozenset[tuple[str, str]] = frozenset()
ANNOUNCED_SETTINGS: frozenset[str] = frozenset()

_PATTERN = re.compile(
    r"\$(?i:(?P<escaped>\$)|(?P<named>[_a-z][_a-z0-9]*)"
    r"|\{(?:(?P<braced>[_a-z][_a-z0-9]*(?::?[-+?].*)?)\}|(?P<invalid>)))"
)
_OPERATORS = (":?", "?", ":-", "-", ":+", "+")


class MissingVariable(Exception):
    """``${NAME:?message}`` (or ``?``) met an unset or empty variable: ``docker compose`` stops here."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"required variable {name} is missing a value: {message}")
        self.name = name


def _apply(operator: str, substitution: str, env: Mapping[str, str]) -> str | None:
    """``NAME<operator>word`` resolved; None when ``substitution`` has no such operator (a plain name)."""
    if operator not in substitution:
        return None
    name, word = substitution.split(operator, 1)
    value = env.get(name)
    absent = value is None or (operator.startswith(":") and value == "")
    if operator.endswith("?"):
        if absent:
            raise MissingVariable(name, interpolate(word, env))
        return value
    if operator.endswith("-"):
        return interpolate(word, env) if absent else value  # the default only when used
    return "" if absent else interpolate(word, env)  # + and :+


def _first_closing_brace(text: str) -> int:
    depth, i = 0, 0
    while i < len(text):
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        if text[i] == "{":
            depth += 1
            i += 1
        i += 1
    return -1


def interpolate(template: str, env: Mapping[str, str]) -> str:
    """``template`` with its variables replaced from ``env``; raises ``MissingVariable`` where compose fails."""

    def replace(match: re.Match[str]) -> str:
        text, rest = match.group(0), ""
        found = [(text.find(op), op) for op in _OPERATORS if op in text]
        operator = min(found)[1] if found else ""
        closing = _first_closing_brace(text)
        if closing > -1:
            text, rest = text[: closing + 1], text[closing + 1 :]
        groups = _PATTERN.match(text)
        assert groups is not None
        if groups["escaped"]:
            return "$"
        name = groups["named"] or groups["braced"]
        if not name:
            raise ValueError(f"invalid interpolation in {template!r}")
        value = _apply(operator, name, env) if groups["braced"] and operator else None
        if value is not None:
            return value + interpolate(rest, env)
        return env.get(name, "")

    return _PATTERN.sub(replace, template)


def _walk(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: _walk(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_walk(value, env) for value in node]
    return node


def load(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The file as YAML (anchors and merge keys resolved), not yet interpolated."""
    return yaml.safe_load(path.read_text())


def render(document: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Every string of ``document`` interpolated from ``env``; raises ``MissingVariable`` like ``docker compose``."""
    return _walk(document, env)


def required_variables(document: dict[str, Any], env: Mapping[str, str] | None = None) -> set[str]:
    """The variables ``docker compose up`` refuses to start without, given ``env``: found by trying, as an operator would."""
    env, required = dict(env or {}), set()
    while True:
        try:
            render(document, env)
            return required
        except MissingVariable as missing:
            assert missing.name not in required, f"{missing.name} is required even when set"
            required.add(missing.name)
            env[missing.name] = SENTINEL.format(missing.name)


def render_fresh(document: dict[str, Any], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A first ``docker compose up`` with only the required variables set (each to its SENTINEL) plus ``env``."""
    env = dict(env or {})
    env.update({name: SENTINEL.format(name) for name in required_variables(document, env)})
    return render(document, env)


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, from either of compose's forms (mapping, or a list of NAME=value)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def env_file(path: Path) -> dict[str, str]:
    """NAME=value lines of an env file (comments and blank lines skipped)."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs

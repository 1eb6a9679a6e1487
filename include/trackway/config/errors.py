"""The one error the settings raise."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting is malformed; the message says which variable and how to fix it (never a secret's value)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]  # one message per bad variable, for `trackway config check`

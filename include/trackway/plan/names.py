"""Name rules: how plan names become SQL identifiers, and the naming conventions lint checks.

Normalisation (documented in README, "Tracking plan"): Unicode NFKD, drop what is not
ASCII, camelCase boundaries become ``_``, lower case, every run of characters other
than ``a-z0-9`` becomes one ``_``, leading/trailing ``_`` removed; a name that is
empty or starts with a digit gets a ``p_`` prefix (``e_`` for events); a name longer
than 54 characters is cut and given an 8-hex suffix from a hash of the original name,
so every identifier fits PostgreSQL's 63 bytes and stays stable. The result only has
``[a-z0-9_]`` and is still always quoted in generated SQL.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import unicodedata

MAX_IDENTIFIER = 63
_CUT = 54

# Columns every typed view carries; a property normalised to one of these would collide.
COMMON_COLUMNS = (
    "event_id",
    "event_type",
    "event_name",
    "event_version",
    "user_id",
    "anonymous_id",
    "session_id",
    "source_id",
    "occurred_at",
    "received_at",
    "event_date",
    "properties",
    "traits",
    "context",
)
# Words no column should be named even when quoted: BI tools and hand-written SQL trip on them.
RESERVED_WORDS = frozenset(
    """all and any array as asc between by case cast check collate column constraint create cross current_date
    current_time current_timestamp current_user default delete desc distinct do else end except exists false fetch
    for foreign from full grant group having in inner insert intersect into is join lateral leading left like limit
    localtime localtimestamp natural not null offset on only or order outer over primary references returning right
    select session_user some symmetric table then to trailing true union unique update user using values when where
    window with""".split()  # noqa: SIM905 (a word list reads better as text)
)


def hash8(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]


def snake(name: str) -> str:
    """Lower snake_case of any text, ASCII only; may be empty."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def identifier(name: str, prefix: str = "p_") -> str:
    """A stable ``[a-z0-9_]`` identifier of at most 63 bytes for a plan name."""
    base = snake(name)
    if not base or base[0].isdigit():
        base = prefix + base
    if len(base) > _CUT or (base != snake(name) and not snake(name)):
        base = base[:_CUT].rstrip("_") + "_" + hash8(name)
    return base


def column_name(prop: str) -> str:
    """A property's column; a reserved SQL word gets ``_value`` so analysts needn't quote it."""
    col = identifier(prop, "p_")
    return col + "_value" if col in RESERVED_WORDS else col


def relation_name(event_name: str) -> str:
    """An event's typed view; a reserved SQL word (e.g. Group) gets ``_event``."""
    rel = identifier(event_name, "e_")
    return rel + "_event" if rel in RESERVED_WORDS else rel


def unique_columns(names: list[str], taken: tuple[str, ...] = COMMON_COLUMNS) -> dict[str, str]:
    """Map each property to a column, suffixing a hash where two would collide (lint reports those)."""
    used = set(taken)
    out: dict[str, str] = {}
    for name in names:
        col = column_name(name)
        if col in used:
            col = (col[: _CUT - 9].rstrip("_") + "_" + hash8(name))[:MAX_IDENTIFIER]
        used.add(col)
        out[name] = col
    return out


def quote_ident(name: str) -> str:
    """Double-quote an identifier for both DuckDB and PostgreSQL."""
    return '"' + name.replace('"', '""') + '"'


def sql_string(value: str) -> str:
    """A standard SQL string literal (backslashes are plain characters in both warehouses)."""
    if "\x00" in value:
        raise ValueError("a NUL character cannot appear in a SQL string literal")
    return "'" + value.replace("'", "''") + "'"


def jinja_safe(text: str) -> str:
    """Text placed in a dbt file is rendered by Jinja: neutralise ``{`` so names can't inject templates."""
    return text.replace("{", "{{ '{' }}")


# ---- conventions


def is_title_case(name: str) -> bool:
    words = name.split(" ")
    return all(w[:1].isupper() and w[1:] == w[1:].lower() and w.isalnum() for w in words) and bool(name)


def is_snake(name: str) -> bool:
    return re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", name) is not None


def is_camel(name: str) -> bool:
    return re.fullmatch(r"[a-z][a-zA-Z0-9]*", name) is not None


CASE_CHECKS = {"title": is_title_case, "snake": is_snake, "camel": is_camel}
CASE_EXAMPLES = {"title": "Listing Viewed", "snake": "listing_viewed", "camel": "listingViewed"}


def near_duplicates(names: list[str], cutoff: float = 0.9) -> list[tuple[str, str]]:
    """Pairs that differ only by case/punctuation, or are nearly the same spelling."""
    pairs: list[tuple[str, str]] = []
    by_snake: dict[str, str] = {}
    for name in names:
        key = snake(name)
        if key in by_snake and by_snake[key] != name:
            pairs.append((by_snake[key], name))
        by_snake.setdefault(key, name)
    keys = sorted(by_snake)
    for i, a in enumerate(keys):
        # Sorted neighbours only: O(n) comparisons keeps a 500-event plan fast.
        for b in keys[i + 1 : i + 4]:
            if len(a) > 5 and difflib.SequenceMatcher(None, a, b).ratio() >= cutoff:
                pairs.append((by_snake[a], by_snake[b]))
    return pairs

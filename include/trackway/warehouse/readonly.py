"""People's SQL (``trackway query``, the plan's analyst queries): one read-only SELECT, on every backend.

Each backend enforces it where its database can, not by inspecting the text:
PostgreSQL sends one statement through the extended protocol inside a
read-only transaction that is rolled back; DuckDB opens the file read-only
with file access off and its configuration locked, and runs only a statement
its own parser calls a SELECT; BigQuery runs only what a dry run calls a SELECT.
PostgreSQL and BigQuery also run the text as a subquery (``as_subquery``),
which their grammars allow only for a query.
"""

from __future__ import annotations

RULE = (
    "trackway query (and the plan's analyst queries) runs one read-only SELECT "
    "(WITH ... SELECT, VALUES and TABLE too): no second statement, no write, DDL, COPY or SET, "
    "and nothing outside the warehouse (files, URLs, extensions)"
)


class ReadOnlyQueryError(PermissionError):
    """People's SQL that is not one read-only SELECT; the message says what is allowed."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}. {RULE}")


def strip_terminator(sql: str) -> str:
    """The text without trailing whitespace and semicolons (``SELECT 1;`` is one statement)."""
    text = sql.rstrip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise ReadOnlyQueryError("the query is empty")
    return text


def as_subquery(sql: str, limit: int) -> str:
    """``sql`` as the subquery of a SELECT: only a query parses there, never DML, DDL, COPY or a second statement.

    The newlines end a trailing ``-- comment`` before the closing parenthesis.
    """
    return f"SELECT * FROM (\n{strip_terminator(sql)}\n) AS trackway_query LIMIT {int(limit)}"


def bigquery_separators(sql: str) -> bool:
    """Whether a ``;`` outside strings, quoted names and comments separates statements (GoogleSQL's lexing).

    Only a first check, so no text reaches the service, not even a dry run, when
    it holds a second statement (bqemulator executes dry runs); BigQuery's own
    dry run is the authority.
    """
    text = strip_terminator(sql)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"`":
            triple = c != "`" and text.startswith(c * 3, i)
            close = c * 3 if triple else c
            i += len(close)
            while i < n and not text.startswith(close, i):
                i += 2 if text[i] == "\\" else 1
            i += len(close)
        elif c == "#" or text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c == ";":
            return True
        else:
            i += 1
    return False

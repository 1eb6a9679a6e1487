"""A small product database (hosts, listings, bookings) as a real SQLite file, and its sources-file entry."""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE hosts (id TEXT PRIMARY KEY, name TEXT NOT NULL, updated_at TIMESTAMP NOT NULL);
CREATE TABLE listings (
    id TEXT PRIMARY KEY, host_id TEXT NOT NULL, neighbourhood TEXT, latitude REAL, longitude REAL, price REAL,
    updated_at TIMESTAMP NOT NULL, city TEXT
);
CREATE TABLE bookings (
    id INTEGER PRIMARY KEY, listing_id TEXT NOT NULL, nights INTEGER, updated_at TIMESTAMP NOT NULL, total_price REAL
);
"""
T0 = "2026-11-01 08:00:00"


def write_app_db(path: Path, listing_ids: list[str], *, bookings: int = 2) -> Path:
    """Two hosts; a listing per id (Lisbon, alternating hosts and neighbourhoods Alfama and Baixa); ``bookings`` bookings.

    The columns the BI bundle's marketplace dataset reads are there, as in the demo's database (docs/bi.md).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as con:
        con.executescript(SCHEMA)
        con.executemany("INSERT INTO hosts VALUES (?, ?, ?)", [("h1", "Ana Silva", T0), ("h2", "Ben Costa", T0)])
        con.executemany(
            "INSERT INTO listings VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (lid, f"h{1 + n % 2}", ("Alfama", "Baixa")[n % 2], 38.71 + n / 1000, -9.13, 100.0 + n, T0, "Lisbon")
                for n, lid in enumerate(listing_ids)
            ],
        )
        con.executemany(
            "INSERT INTO bookings VALUES (?, ?, ?, ?, ?)",
            [(n, listing_ids[0], 3, T0, 300.0) for n in range(1, bookings + 1)],
        )
    con.close()
    return path


def sources_yaml(url_or_conn: str, *, name: str = "product", listings: str = "", bookings: str = "") -> str:
    """A sources file with one ``kind: database`` entry over the three tables; extra YAML per table entry."""
    source = f"conn_id: {url_or_conn}" if "://" not in url_or_conn else f"url: {url_or_conn}"
    return f"""\
sources:
  - name: {name}
    kind: database
    {source}
    tables:
      - {{name: hosts, cursor: updated_at}}
      - {{name: listings, cursor: updated_at, references: {{host_id: hosts.id}}{listings}}}
      - {{name: bookings, cursor: updated_at{bookings}}}
"""

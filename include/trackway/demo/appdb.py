"""Nestful's own application database: the SQLite file the demo's app_sync copies into the warehouse.

It holds what the product knows and its events only mention: hosts, listings (with their
neighbourhood, coordinates and nightly price) and bookings. Listings are the catalogue
the simulated visitors browse (``marketplace._build_catalog``: the same ids and prices
the events carry), hosts are the landlords among the simulated people (their account ids
are the events' userIds), and bookings follow the day's showing requests. Everything is
derived from ``seed``, like the events.
"""

from __future__ import annotations

import random
import sqlite3
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from trackway.demo.marketplace import Call, Listing, _build_catalog, _make_person

#: The people whose landlords are Nestful's hosts: the demo's default crowd, whatever --people says.
HOST_POOL = 300
_NAMESPACE = uuid.UUID("a4d2e1f0-3c5b-4e7a-9b1d-6f8e2c4a0b95")

# city -> (neighbourhood, latitude, longitude) of its centre, roughly; listings scatter a few hundred metres around it.
NEIGHBOURHOODS: dict[str, list[tuple[str, float, float]]] = {
    "Lisbon": [
        ("Alfama", 38.7118, -9.1300),
        ("Baixa", 38.7110, -9.1370),
        ("Bairro Alto", 38.7130, -9.1460),
        ("Belém", 38.6970, -9.2060),
        ("Príncipe Real", 38.7170, -9.1490),
    ],
    "Barcelona": [
        ("Gràcia", 41.4030, 2.1570),
        ("El Born", 41.3850, 2.1830),
        ("Eixample", 41.3890, 2.1620),
        ("Barceloneta", 41.3800, 2.1890),
        ("Poblenou", 41.4030, 2.2000),
    ],
    "Austin": [
        ("Downtown", 30.2680, -97.7430),
        ("East Austin", 30.2630, -97.7200),
        ("South Congress", 30.2450, -97.7500),
        ("Hyde Park", 30.3050, -97.7300),
        ("Zilker", 30.2640, -97.7730),
    ],
    "Denver": [
        ("LoDo", 39.7530, -105.0000),
        ("Capitol Hill", 39.7320, -104.9780),
        ("Highlands", 39.7620, -105.0110),
        ("RiNo", 39.7680, -104.9810),
        ("Cherry Creek", 39.7170, -104.9530),
    ],
    "Montreal": [
        ("Plateau-Mont-Royal", 45.5220, -73.5800),
        ("Old Montreal", 45.5070, -73.5540),
        ("Mile End", 45.5250, -73.6000),
        ("Griffintown", 45.4930, -73.5630),
        ("Verdun", 45.4580, -73.5690),
    ],
    "Berlin": [
        ("Kreuzberg", 52.4990, 13.4030),
        ("Mitte", 52.5200, 13.4050),
        ("Prenzlauer Berg", 52.5390, 13.4240),
        ("Neukölln", 52.4810, 13.4350),
        ("Friedrichshain", 52.5150, 13.4540),
    ],
    "Mexico City": [
        ("Roma Norte", 19.4190, -99.1620),
        ("Condesa", 19.4120, -99.1740),
        ("Coyoacán", 19.3500, -99.1620),
        ("Polanco", 19.4330, -99.1910),
        ("Centro Histórico", 19.4330, -99.1330),
    ],
    "Seattle": [
        ("Capitol Hill", 47.6250, -122.3210),
        ("Ballard", 47.6680, -122.3840),
        ("Fremont", 47.6510, -122.3500),
        ("Queen Anne", 47.6370, -122.3570),
        ("Pioneer Square", 47.6010, -122.3340),
    ],
}

SCHEMA = """
CREATE TABLE hosts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    city TEXT NOT NULL,
    agency_id TEXT,
    agency_name TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE listings (
    id TEXT PRIMARY KEY,
    host_id TEXT NOT NULL REFERENCES hosts (id),
    title TEXT NOT NULL,
    city TEXT NOT NULL,
    neighbourhood TEXT NOT NULL,
    latitude REAL NOT NULL,
    longitude REAL NOT NULL,
    property_type TEXT NOT NULL,
    bedrooms INTEGER NOT NULL,
    price REAL NOT NULL,
    currency TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE bookings (
    id TEXT PRIMARY KEY,
    listing_id TEXT NOT NULL REFERENCES listings (id),
    guest_id TEXT NOT NULL,
    check_in DATE NOT NULL,
    nights INTEGER NOT NULL,
    total_price REAL NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
"""


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def app_rows(calls: list[Call], day: date, seed: int = 7) -> dict[str, list[tuple]]:
    """table -> rows, in the column order of ``SCHEMA``."""
    rng = random.Random(f"nestful/{seed}/appdb")
    day_start = datetime.combine(day, time(0), tzinfo=UTC)
    landlords = [p for p in (_make_person(seed, i, day) for i in range(HOST_POOL)) if p.role == "landlord"]
    hosts = []
    for p in landlords:
        joined = day_start - timedelta(days=rng.randint(60, 900), seconds=rng.randint(0, 86399))
        agency_id, agency_name = (p.agency[0], p.agency[1]) if p.agency else (None, None)
        touched = joined + timedelta(days=rng.randint(0, 50))
        hosts.append(
            (p.user_id, f"{p.first_name} {p.last_name}", p.city, agency_id, agency_name, _ts(joined), _ts(touched))
        )
    by_city: dict[str, list[str]] = {}
    for p in landlords:
        by_city.setdefault(p.city, []).append(p.user_id)
    every_host = [p.user_id for p in landlords]
    listings = []
    catalog: dict[str, Listing] = {}
    for city, items in _build_catalog(seed).items():
        for listing in items:
            catalog[listing.listing_id] = listing
            name, lat, lon = rng.choice(NEIGHBOURHOODS[city])
            created = day_start - timedelta(days=rng.randint(20, 700), seconds=rng.randint(0, 86399))
            updated = created + timedelta(days=rng.randint(0, 19))
            listings.append(
                (
                    listing.listing_id,
                    rng.choice(by_city.get(city) or every_host),
                    listing.title,
                    city,
                    name,
                    round(lat + rng.uniform(-0.006, 0.006), 6),
                    round(lon + rng.uniform(-0.008, 0.008), 6),
                    listing.property_type,
                    listing.bedrooms,
                    listing.price_per_night,  # the price the events show
                    "USD",
                    _ts(created),
                    _ts(updated),
                )
            )
    bookings = []
    for call in calls:
        kw = call.kwargs
        if call.method != "track" or kw.get("event") != "Showing Requested" or rng.random() >= 0.5:
            continue
        booked_listing = catalog.get(kw["properties"]["listing_id"])
        if booked_listing is None or not kw.get("user_id"):
            continue
        nights = rng.choice([2, 3, 4, 5, 7, 14])
        booked = kw["timestamp"] + timedelta(minutes=rng.randint(5, 600))
        bookings.append(
            (
                str(uuid.uuid5(_NAMESPACE, kw["message_id"])),
                booked_listing.listing_id,
                kw["user_id"],
                kw["properties"]["requested_date"],
                nights,
                round(nights * booked_listing.price_per_night, 2),
                rng.choices(["confirmed", "cancelled"], weights=[85, 15])[0],
                _ts(booked),
                _ts(booked),
            )
        )
    return {"hosts": hosts, "listings": listings, "bookings": bookings}


def write_app_database(path: Path, calls: list[Call], day: date, seed: int = 7) -> dict[str, int]:
    """Create the SQLite file at ``path`` (replacing one there); rows per table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    rows = app_rows(calls, day, seed)
    with sqlite3.connect(path) as con:
        con.executescript(SCHEMA)
        for table, values in rows.items():
            if values:
                marks = ", ".join("?" for _ in values[0])
                con.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
    con.close()
    return {table: len(values) for table, values in rows.items()}


SOURCES_ENTRY = """\
sources:
  # Nestful's application database (the demo's embedded SQLite), copied into schema app by app_sync.
  - name: nestful
    kind: database
    url: {url}
    tables:
      - {{name: hosts, cursor: updated_at}}
      - {{name: listings, cursor: updated_at, references: {{host_id: hosts.id}}}}
      - {{name: bookings, cursor: updated_at, deletes: remove, references: {{listing_id: listings.id}}}}
"""


def write_sources_file(path: Path, database: Path) -> Path:
    """The demo's sources file: the application database above, read by the app_sync DAG."""
    path.write_text(SOURCES_ENTRY.format(url=f"sqlite:///{database.resolve()}"), encoding="utf-8")
    return path

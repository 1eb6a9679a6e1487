"""Nestful, a synthetic home-rental marketplace: one UTC day of Segment calls.

The demo needs traffic that looks like a real product's so the warehouse
models (sessions, funnels, identity stitching) have something to chew on:
anonymous browsing that later signs up, returning users, evening peaks,
campaign arrivals, a small mobile app. Everything is derived from ``seed`` so
a demo run, a test and a bug report all see the same events.

Identity (ids, names, device) depends only on ``seed`` and the person's
index, behaviour on ``seed``, the day and the index: generating several days
gives the same people new visits (each day is simulated on its own, so a
person who signs up does so on every generated day).
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

BASE_URL = "https://www.nestful.example"
DAY_MS = 24 * 3600 * 1000
_NAMESPACE = uuid.UUID("6f1d3c2e-5b7a-4c1e-9f0a-2d6b8e4a7c31")  # fixed: message ids must not change between releases


@dataclass(frozen=True)
class Call:
    """One SDK call, independent of any SDK instance: ``getattr(client, method)(**kwargs)``."""

    method: str  # 'track' | 'page' | 'screen' | 'identify' | 'group' | 'alias'
    kwargs: dict

    @property
    def timestamp(self) -> datetime:
        return self.kwargs["timestamp"]

    @property
    def message_id(self) -> str:
        return self.kwargs["message_id"]


# --------------------------------------------------------------------------- catalogue

# (name, url slug, low, high nightly price in USD for a one-bedroom)
CITIES = [
    ("Lisbon", "lisbon", 70, 220),
    ("Barcelona", "barcelona", 85, 260),
    ("Austin", "austin", 95, 300),
    ("Denver", "denver", 90, 280),
    ("Montreal", "montreal", 75, 230),
    ("Berlin", "berlin", 70, 220),
    ("Mexico City", "mexico-city", 45, 170),
    ("Seattle", "seattle", 110, 340),
]
_CITY_SLUGS = {name: slug for name, slug, _, _ in CITIES}
_CITY_WEIGHTS = [14, 13, 12, 10, 10, 12, 9, 11]

# property type -> possible bedroom counts
PROPERTY_TYPES = {
    "apartment": [1, 1, 2, 2, 3],
    "house": [2, 3, 3, 4, 5],
    "condo": [1, 2, 2, 3],
    "studio": [0],
    "cabin": [1, 2, 3],
    "loft": [1, 1, 2],
}
_ADJECTIVES = ["Sunny", "Cozy", "Bright", "Modern", "Quiet", "Spacious", "Charming", "Renovated", "Airy", "Stylish"]


@dataclass(frozen=True)
class Listing:
    listing_id: str
    city: str
    slug: str
    property_type: str
    bedrooms: int
    price_per_night: float
    title: str


def _build_catalog(seed: int) -> dict[str, list[Listing]]:
    rng = random.Random(f"nestful/{seed}/catalog")
    by_city: dict[str, list[Listing]] = {}
    n = 0
    for city, slug, low, high in CITIES:
        listings = []
        for _ in range(rng.randint(60, 90)):
            ptype = rng.choices(list(PROPERTY_TYPES), weights=[40, 18, 16, 12, 6, 8])[0]
            bedrooms = rng.choice(PROPERTY_TYPES[ptype])
            price = rng.uniform(low, high) * (0.75 + 0.3 * max(bedrooms, 0.5))
            size = "studio" if bedrooms == 0 else f"{bedrooms}-bedroom {ptype}"
            title = f"{rng.choice(_ADJECTIVES)} {size} in {city}"
            listings.append(Listing(f"lst_{n:05d}", city, slug, ptype, bedrooms, round(price, 2), title))
            n += 1
        by_city[city] = listings
    return by_city


# --------------------------------------------------------------------------- people and devices

_FIRST = [
    "Ana",
    "Ben",
    "Chloe",
    "Diego",
    "Elena",
    "Farah",
    "Gus",
    "Hana",
    "Ivan",
    "Julia",
    "Kofi",
    "Lena",
    "Marco",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tomas",
    "Uma",
    "Victor",
    "Wen",
    "Yara",
    "Zoe",
    "Liam",
    "Maya",
    "Noah",
    "Ines",
    "Jonas",
]
_LAST = [
    "Silva",
    "Garcia",
    "Nguyen",
    "Muller",
    "Smith",
    "Dubois",
    "Rossi",
    "Kowalski",
    "Haddad",
    "Okafor",
    "Tanaka",
    "Larsen",
    "Moreau",
    "Ferreira",
    "Johnson",
    "Schmidt",
    "Lopez",
    "Novak",
    "Cohen",
    "Patel",
    "Kim",
    "Berg",
    "Costa",
    "Walker",
    "Ibrahim",
]
_EMAIL_DOMAINS = ["example.com", "example.org", "example.net"]  # RFC 2606: never someone's real address

_LOCALES = [  # (locale, timezone, weight)
    ("en-US", "America/New_York", 24),
    ("en-US", "America/Chicago", 10),
    ("en-US", "America/Los_Angeles", 12),
    ("en-GB", "Europe/London", 12),
    ("es-ES", "Europe/Madrid", 8),
    ("es-MX", "America/Mexico_City", 6),
    ("fr-CA", "America/Toronto", 6),
    ("en-CA", "America/Toronto", 6),
    ("de-DE", "Europe/Berlin", 8),
    ("pt-PT", "Europe/Lisbon", 8),
]

_CHROME = "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0"
_DESKTOP_UAS = [
    (f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {_CHROME} Safari/537.36", 30),
    (f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {_CHROME} Safari/537.36", 20),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Safari/605.1.15",
        18,
    ),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", 10),
    (f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {_CHROME} Safari/537.36 Edg/131.0.0.0", 12),
]
_MOBILE_WEB_UAS = [
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Mobile/15E148 Safari/604.1",
        55,
    ),
    (f"Mozilla/5.0 (Linux; Android 10; K) {_CHROME} Mobile Safari/537.36", 45),
]
_DESKTOP_SCREENS = [(1920, 1080, 1), (1536, 864, 1.25), (1440, 900, 2), (2560, 1440, 1), (1366, 768, 1)]
_MOBILE_SCREENS = [(390, 844, 3), (393, 852, 3), (412, 915, 2.625), (360, 800, 3)]
_APP_VERSION = ("5.3.1", "5310")
_APP_DEVICES = [  # (os, os version, manufacturer, model, user agent, screen)
    ("iOS", "18.1.1", "Apple", "iPhone15,2", "Nestful/5.3.1 CFNetwork/1568.200.51 Darwin/24.1.0", (393, 852, 3)),
    ("iOS", "17.6.1", "Apple", "iPhone14,5", "Nestful/5.3.1 CFNetwork/1496.0.7 Darwin/23.6.0", (390, 844, 3)),
    (
        "Android",
        "14",
        "Google",
        "Pixel 8",
        "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP2A.240905.003)",
        (412, 915, 2.625),
    ),
    (
        "Android",
        "14",
        "samsung",
        "SM-S921B",
        "Dalvik/2.1.0 (Linux; U; Android 14; SM-S921B Build/UP1A.231005.007)",
        (384, 832, 3),
    ),
]

_AGENCIES = [  # landlords who manage through an agency send `group`
    ("agc_0001", "Harbor & Pine Realty", 42),
    ("agc_0002", "Casa Viva Properties", 17),
    ("agc_0003", "Northline Rentals", 85),
    ("agc_0004", "Urban Nest Management", 230),
    ("agc_0005", "Sol y Mar Estates", 9),
]


@dataclass(frozen=True)
class Device:
    kind: str  # 'desktop' | 'mobile_web' | 'app'
    user_agent: str
    locale: str
    timezone: str
    ip: str
    screen: tuple
    app: tuple | None = None  # (os, os_version, manufacturer, model, device_id) for the app

    def context(self) -> dict:
        """A fresh dict per call: the SDK writes ``context.library`` into whatever it is given."""
        ctx: dict = {"userAgent": self.user_agent, "locale": self.locale, "timezone": self.timezone, "ip": self.ip}
        width, height, density = self.screen
        ctx["screen"] = {"width": width, "height": height, "density": density}
        if self.app:
            os_name, os_version, manufacturer, model, device_id = self.app
            ctx["app"] = {
                "name": "Nestful",
                "version": _APP_VERSION[0],
                "build": _APP_VERSION[1],
                "namespace": "com.nestful.app",
            }
            ctx["device"] = {"id": device_id, "manufacturer": manufacturer, "model": model, "type": os_name.lower()}
            ctx["os"] = {"name": os_name, "version": os_version}
        return ctx


@dataclass(frozen=True)
class Person:
    index: int
    anonymous_id: str
    user_id: str  # their account id; only sent once they are known
    known: bool  # already had an account before this day
    signs_up: bool  # anonymous now, creates the account during the day
    role: str  # 'renter' | 'landlord'
    first_name: str
    last_name: str
    email: str
    created_at: datetime | None  # None until they sign up
    agency: tuple | None
    device: Device
    city: str  # where they are looking (renter) or own property (landlord)
    activity: float  # how many sessions they tend to have


_ACCOUNTS_SINCE = datetime(2023, 6, 1, tzinfo=UTC)


def _uuid4_from(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# The experiment the demo runs (metrics.yaml declares its goal): half the people see the new search ranking.
EXPERIMENT = "search_ranking_v2"


def experiment_variant(anonymous_id: str) -> str:
    """Fixed per person and drawn from no random stream, so the rest of the generated day is unchanged."""
    return "treatment" if uuid.uuid5(uuid.NAMESPACE_OID, anonymous_id).int % 2 else "control"


def _make_person(seed: int, index: int, day: date) -> Person:
    rng = random.Random(f"nestful/{seed}/person/{index}")
    anonymous_id = _uuid4_from(rng)
    user_id = f"usr_{rng.getrandbits(48):012x}"
    role = "landlord" if rng.random() < 0.2 else "renter"
    known = rng.random() < 0.35
    signs_up = not known and rng.random() < 0.2
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    email = f"{first}.{last}{rng.randint(1, 99)}@{rng.choice(_EMAIL_DOMAINS)}".lower()
    agency = rng.choice(_AGENCIES) if role == "landlord" and rng.random() < 0.45 else None
    day_start = datetime.combine(day, time(0), tzinfo=UTC)
    # Fixed per person across generated days, but never after the day itself.
    account_created = _ACCOUNTS_SINCE + timedelta(days=rng.randint(0, 1200), seconds=rng.randint(0, 86399))
    if account_created >= day_start:
        account_created = day_start - timedelta(
            days=1 + account_created.toordinal() % 30, seconds=account_created.second
        )
    created_at = account_created if known else None

    locale, tz = rng.choices([(loc, z) for loc, z, _ in _LOCALES], weights=[w for *_, w in _LOCALES])[0]
    ip = f"{rng.choice(['192.0.2', '198.51.100', '203.0.113'])}.{rng.randint(1, 254)}"  # RFC 5737 documentation ranges
    kind = rng.choices(["desktop", "mobile_web", "app"], weights=[56, 38, 6])[0]
    if kind == "app":
        os_name, os_version, manufacturer, model, ua, screen = rng.choice(_APP_DEVICES)
        device = Device(kind, ua, locale, tz, ip, screen, (os_name, os_version, manufacturer, model, _uuid4_from(rng)))
    else:
        uas = _DESKTOP_UAS if kind == "desktop" else _MOBILE_WEB_UAS
        ua = rng.choices([u for u, _ in uas], weights=[w for _, w in uas])[0]
        screen = rng.choice(_DESKTOP_SCREENS if kind == "desktop" else _MOBILE_SCREENS)
        device = Device(kind, ua, locale, tz, ip, screen)
    city = rng.choices([c[0] for c in CITIES], weights=_CITY_WEIGHTS)[0]
    activity = rng.choice([0.6, 0.8, 1.0, 1.0, 1.3, 1.8])
    return Person(
        index,
        anonymous_id,
        user_id,
        known,
        signs_up,
        role,
        first,
        last,
        email,
        created_at,
        agency,
        device,
        city,
        activity,
    )


# --------------------------------------------------------------------------- one session

# Relative likelihood that a session starts in each UTC hour: quiet nights, a
# working-day plateau and an evening peak (Europe's and the Americas' evenings overlap).
HOURLY_WEIGHTS = [
    2.2,
    1.6,
    1.1,
    0.8,
    0.6,
    0.6,
    0.8,
    1.2,
    2.0,
    2.8,
    3.2,
    3.4,
    3.5,
    3.4,
    3.3,
    3.5,
    3.9,
    4.6,
    5.6,
    6.6,
    7.2,
    6.6,
    5.0,
    3.4,
]

_CAMPAIGNS = [  # (source, medium, name, term, referrer, weight)
    ("google", "cpc", "winter_getaways", "apartment rental", "https://www.google.com/", 30),
    ("facebook", "paid_social", "cozy_season", None, "https://l.facebook.com/", 20),
    ("instagram", "paid_social", "cozy_season", None, "https://l.instagram.com/", 12),
    ("newsletter", "email", "weekly_picks_2026_47", None, "", 14),
    ("partner_blog", "referral", "city_guides", None, "https://travel-notes.example/", 8),
    ("google", "cpc", "become_a_host", "rent out my apartment", "https://www.google.com/", 10),
]
_ORGANIC_REFERRERS = [
    ("", 50),
    ("https://www.google.com/", 32),
    ("https://www.bing.com/", 5),
    ("https://duckduckgo.com/", 5),
    ("https://www.reddit.com/", 4),
    ("https://t.co/", 4),
]

_HOST_PAGES = [
    ("Host Dashboard", "/host/dashboard", "Dashboard"),
    ("Host Listings", "/host/listings", "Your listings"),
    ("Host Inbox", "/host/inbox", "Inbox"),
    ("Host Calendar", "/host/calendar", "Calendar"),
]
_INFO_PAGES = [
    ("How It Works", "/how-it-works", "How Nestful works"),
    ("Help Center", "/help", "Help Center"),
    ("About", "/about", "About Nestful"),
]


class _DayOver(Exception):
    """The next event would fall after midnight: the session simply stops there."""


@dataclass
class _Emitter:
    """Numbers a person's calls so message ids are stable and unique."""

    seed: int
    day: date
    person: Person
    out: list
    seq: int = 0
    signed_up_at: datetime | None = None  # set by a sign-up today; traits must keep it afterwards

    def message_id(self) -> str:
        self.seq += 1
        return str(uuid.uuid5(_NAMESPACE, f"{self.seed}/{self.day.isoformat()}/{self.person.index}/{self.seq}"))


@dataclass
class _Session:
    rng: random.Random
    emitter: _Emitter
    catalog: dict
    day_start: datetime
    start_ms: int
    session_id: int
    identified: bool
    signup_step: int | None
    t: int = 0
    calls_emitted: int = 0
    referrer: str = ""
    current_page: dict | None = None
    campaign: dict | None = None
    results: list = field(default_factory=list)
    search: dict | None = None
    requested: set = field(default_factory=set)
    state: str = "home"
    last_listing: Listing | None = None

    def __post_init__(self):
        self.t = self.start_ms

    @property
    def person(self) -> Person:
        return self.emitter.person

    @property
    def is_app(self) -> bool:
        return self.person.device.kind == "app"

    # ---- clock

    def _wait(self, ms: int) -> None:
        if self.calls_emitted:  # the first call of a session happens at its start
            self.t += max(ms, 50)
        if self.t >= DAY_MS:
            raise _DayOver

    def think(self, median_s: float = 14.0) -> int:
        """A human pause between actions: seconds to a few minutes, long-tailed."""
        seconds = self.rng.lognormvariate(0, 0.8) * median_s
        return int(min(max(seconds, 1.5), 240) * 1000) + self.rng.randint(0, 999)

    def quick(self) -> int:
        """Events fired by the same page load or form submit."""
        return self.rng.randint(120, 1500)

    # ---- emitting

    def _emit(self, method: str, wait_ms: int, **kwargs) -> None:
        self._wait(wait_ms)
        context = self.person.device.context()
        context["sessionId"] = self.session_id
        if self.calls_emitted == 0:
            context["sessionStart"] = True
            if self.campaign:
                context["campaign"] = dict(self.campaign)
        if self.current_page is not None and not self.is_app:
            context["page"] = dict(self.current_page)
        if kwargs.get("event") == "Listings Searched":  # a search results page: exposed to the ranking test
            context["experiments"] = {EXPERIMENT: experiment_variant(self.person.anonymous_id)}
        call_kwargs = {
            "message_id": self.emitter.message_id(),
            "timestamp": self.day_start + timedelta(milliseconds=self.t),
            "context": context,
        }
        if method == "alias":
            call_kwargs["previous_id"] = self.person.anonymous_id
            call_kwargs["user_id"] = self.person.user_id
        else:
            call_kwargs["anonymous_id"] = self.person.anonymous_id
            if self.identified:
                call_kwargs["user_id"] = self.person.user_id
        call_kwargs.update(kwargs)
        self.emitter.out.append(Call(method, call_kwargs))
        self.calls_emitted += 1

    def view(
        self,
        name: str,
        category: str,
        path: str,
        title: str,
        search: str = "",
        wait_ms: int | None = None,
        screen_properties: dict | None = None,
    ) -> None:
        """A page view on the web, a screen view in the app."""
        wait_ms = self.think() if wait_ms is None else wait_ms
        if self.is_app:
            self._emit(
                "screen",
                wait_ms,
                name=_APP_SCREENS.get(name, name),
                category=category,
                properties=dict(screen_properties or {}),
            )
            return
        url = BASE_URL + path + search
        page = {"path": path, "referrer": self.referrer, "search": search, "title": f"{title} | Nestful", "url": url}
        self.current_page = page
        self.referrer = url
        self._emit("page", wait_ms, name=name, category=category, properties=dict(page))

    def track(self, event: str, properties: dict, wait_ms: int | None = None) -> None:
        self._emit("track", self.quick() if wait_ms is None else wait_ms, event=event, properties=properties)

    def traits(self) -> dict:
        p = self.person
        plan = "free" if p.role == "renter" else ("host_pro" if p.agency else "host_basic")
        created = p.created_at or self.emitter.signed_up_at
        assert created is not None, "traits are only sent by people who have an account"
        return {
            "email": p.email,
            "name": f"{p.first_name} {p.last_name}",
            "first_name": p.first_name,
            "last_name": p.last_name,
            "role": p.role,
            "plan": plan,
            "created_at": created.isoformat(timespec="seconds"),
        }

    def identify(self, wait_ms: int) -> None:
        self._emit("identify", wait_ms, traits=self.traits())

    def group(self) -> None:
        assert self.person.agency is not None, "only agency landlords send group"
        group_id, name, employees = self.person.agency
        self._emit(
            "group",
            self.quick(),
            group_id=group_id,
            traits={"name": name, "industry": "Real Estate", "employees": employees, "plan": "agency"},
        )

    # ---- the visit

    def run(self) -> int:
        """Simulate the visit; returns the time (ms into the day) of its last event."""
        try:
            self._arrive()
            steps = max(2, int(self.rng.lognormvariate(2.75, 0.5)))
            newsletter_step = self.rng.randrange(steps) if self.rng.random() < 0.012 else None
            state = self.state
            for step in range(steps):
                if self.signup_step is not None and step >= self.signup_step and not self.identified:
                    self.sign_up()
                    state = "signed_up"
                    continue
                if step == newsletter_step:
                    self.newsletter()
                state = self.step(state)
                if state == "exit":
                    break
        except _DayOver:
            pass
        return self.t if self.calls_emitted else self.start_ms

    def _arrive(self) -> None:
        rng = self.rng
        if rng.random() < 0.25 and not self.is_app:
            source, medium, name, term, referrer, _ = rng.choices(_CAMPAIGNS, weights=[c[-1] for c in _CAMPAIGNS])[0]
            self.campaign = {"source": source, "medium": medium, "name": name}
            if term:
                self.campaign["term"] = term
            self.referrer = referrer
        elif not self.is_app:
            referrers, weights = zip(*_ORGANIC_REFERRERS, strict=False)
            self.referrer = rng.choices(referrers, weights=weights)[0]
        utm = ""
        if self.campaign:
            utm = "utm_source={source}&utm_medium={medium}&utm_campaign={name}".format(**self.campaign)

        hosting = self.person.role == "landlord"
        if hosting and self.identified:
            self.view("Host Dashboard", "Host", "/host/dashboard", "Dashboard", search=f"?{utm}" if utm else "")
            self.state = "host"
        elif hosting and rng.random() < 0.6:
            self.view("Become a Host", "Marketing", "/hosts", "Earn with your place", search=f"?{utm}" if utm else "")
            self.state = "pricing"
        elif rng.random() < 0.35 and self.referrer:
            # Landing straight on a listing from a search engine or ad.
            self._pick_search(rng)
            self.view_listing(wait_ms=0, from_search=False, search=f"?{utm}" if utm else "")
            self.state = "listing"
        elif rng.random() < 0.3:
            self.search_page(utm=utm, wait_ms=0)
            self.state = "search"
        else:
            self.view("Home", "Marketing", "/", "Find your next home", search=f"?{utm}" if utm else "", wait_ms=0)
            self.state = "home"
        if self.identified and self.rng.random() < 0.3:
            self.identify(self.quick())
            if self.person.agency and self.rng.random() < 0.5:
                self.group()

    def step(self, state: str) -> str:
        rng, p = self.rng, self.person
        if state == "signed_up":
            state = "host" if p.role == "landlord" else "home"
        if state == "home":
            roll = rng.random()
            if roll < 0.78:
                self.search_page()
                return "search"
            if roll < 0.87:
                name, path, title = rng.choice(_INFO_PAGES)
                self.view(name, "Marketing", path, title)
                return "home"
            if roll < 0.95:
                self.view("Pricing", "Marketing", "/pricing", "Pricing")
                return "pricing"
            return "exit"
        if state == "search":
            roll = rng.random()
            if not self.results or roll < 0.18:
                self.refine_search()
                return "search" if rng.random() < 0.95 else "exit"
            if roll < 0.72:
                self.view_listing()
                return "listing"
            if roll < 0.93:
                self.view("Home", "Marketing", "/", "Find your next home")
                return "home"
            return "exit"
        if state == "listing":
            roll = rng.random()
            listing = self.last_listing
            assert listing is not None, "the listing state follows a listing view"
            if self.identified and p.role == "renter" and listing.listing_id not in self.requested and roll < 0.09:
                self.request_showing(listing)
                return "listing"
            if roll < 0.30:
                self.view_listing()
                return "listing"
            if roll < 0.60:
                self.search_page(again=True)  # back to the results re-runs the search
                return "search"
            if roll < 0.65 and not self.identified:
                self.view("Sign Up", "Account", "/signup", "Create your account")  # looks, does not sign up
                return "home"
            if roll < 0.90:
                self.view("Home", "Marketing", "/", "Find your next home")
                return "home"
            return "exit"
        if state == "pricing":
            roll = rng.random()
            if roll < 0.35:
                self.view("Pricing", "Marketing", "/pricing", "Pricing")
                return "home"
            if roll < 0.8:
                self.search_page()
                return "search"
            return "exit"
        if state == "host":
            roll = rng.random()
            if roll < 0.6:
                name, path, title = rng.choice(_HOST_PAGES)
                self.view(name, "Host", path, title)
                return "host"
            if roll < 0.75:
                self.search_page()  # landlords check what the neighbours charge
                return "search"
            if roll < 0.92:
                self.view("Pricing", "Marketing", "/pricing", "Pricing")
                return "host"
            return "exit"
        raise ValueError(f"unknown state {state!r}")

    # ---- actions

    def _pick_search(self, rng: random.Random) -> None:
        city = self.person.city if rng.random() < 0.8 else rng.choice(CITIES)[0]
        check_in = self.day_start.date() + timedelta(days=rng.randint(2, 75))
        nights = rng.choices([2, 3, 4, 5, 7, 10, 14, 28], weights=[14, 18, 14, 10, 16, 6, 6, 3])[0]
        guests = rng.choices([1, 2, 3, 4, 5, 6], weights=[18, 40, 14, 16, 6, 6])[0]
        min_price = rng.choice([0, 0, 0, 50, 75, 100])
        max_price = rng.choice([150, 200, 250, 300, 400, 600])
        self.search = {
            "city": city,
            "check_in": check_in,
            "check_out": check_in + timedelta(days=nights),
            "guests": guests,
            "min_price": min_price,
            "max_price": max_price,
        }
        self._run_search()

    def _current_search(self) -> dict:
        assert self.search is not None, "search states follow _pick_search"
        return self.search

    def _run_search(self) -> None:
        s = self._current_search()
        need = max(0, (s["guests"] - 1) // 2)
        self.results = [
            lst
            for lst in self.catalog[s["city"]]
            if s["min_price"] <= lst.price_per_night <= s["max_price"] and lst.bedrooms >= need
        ]

    def _search_properties(self) -> dict:
        s = self._current_search()
        return {
            "city": s["city"],
            "check_in": s["check_in"].isoformat(),
            "check_out": s["check_out"].isoformat(),
            "guests": s["guests"],
            "min_price": s["min_price"],
            "max_price": s["max_price"],
            "results_count": len(self.results),
        }

    def search_page(self, utm: str = "", again: bool = False, wait_ms: int | None = None) -> None:
        if self.search is None or not again:
            self._pick_search(self.rng)
        s = self._current_search()
        query = (
            f"?city={_CITY_SLUGS[s['city']]}&check_in={s['check_in']}&check_out={s['check_out']}&guests={s['guests']}"
        )
        if utm:
            query += "&" + utm
        self.view(
            "Search Results",
            "Search",
            "/search",
            f"Stays in {s['city']}",
            search=query,
            wait_ms=wait_ms,
            screen_properties={"city": s["city"]},
        )
        self.track("Listings Searched", self._search_properties())

    def refine_search(self) -> None:
        """Filter changes re-run the search without a new page load."""
        s, rng = self._current_search(), self.rng
        if not self.results:
            s["max_price"] = min(s["max_price"] + rng.choice([100, 150, 200]), 1000)
            s["min_price"] = 0
        else:
            choice = rng.random()
            if choice < 0.4:
                s["max_price"] = max(s["min_price"] + 50, s["max_price"] - rng.choice([50, 100]))
            elif choice < 0.7:
                s["guests"] = max(1, min(8, s["guests"] + rng.choice([-1, 1])))
            else:
                shift = timedelta(days=rng.choice([-7, -2, -1, 1, 2, 7]))
                if s["check_in"] + shift <= self.day_start.date():
                    shift = -shift
                s["check_in"] += shift
                s["check_out"] += shift
        self._run_search()
        self.track("Listings Searched", self._search_properties(), wait_ms=self.think(median_s=8))

    def view_listing(self, wait_ms: int | None = None, from_search: bool = True, search: str = "") -> None:
        pool = self.results if from_search and self.results else self.catalog[self._current_search()["city"]]
        listing = self.rng.choice(pool)
        self.last_listing = listing
        self.view(
            "Listing",
            "Listings",
            f"/listings/{listing.listing_id}",
            listing.title,
            search=search,
            wait_ms=self.think(median_s=20) if wait_ms is None else wait_ms,
            screen_properties={"listing_id": listing.listing_id},
        )
        self.track(
            "Listing Viewed",
            {
                "listing_id": listing.listing_id,
                "city": listing.city,
                "price_per_night": listing.price_per_night,
                "currency": "USD",
                "bedrooms": listing.bedrooms,
                "property_type": listing.property_type,
            },
        )

    def request_showing(self, listing: Listing) -> None:
        when = self.day_start.date() + timedelta(days=self.rng.randint(1, 14))
        self.requested.add(listing.listing_id)
        self.track(
            "Showing Requested",
            {
                "listing_id": listing.listing_id,
                "requested_date": when.isoformat(),
                "message_length": self.rng.randint(0, 600),
            },
            wait_ms=self.think(median_s=45),
        )

    def newsletter(self) -> None:
        topics = ["new_listings", "city_guides", "price_drops"]
        if self.person.role == "landlord":
            topics.append("hosting_tips")
        chosen = sorted(self.rng.sample(topics, self.rng.randint(1, len(topics))))
        self.track(
            "Newsletter Subscribed",
            {"source": self.rng.choice(["footer", "blog", "listing_page", "popup"]), "topics": chosen},
            wait_ms=self.think(),
        )

    def sign_up(self) -> None:
        """Sign Up page, form submit, then the same anonymousId travels on with the new userId."""
        p, rng = self.person, self.rng
        self.view("Sign Up", "Account", "/signup", "Create your account")
        self.identified = True
        form_ms = self.think(median_s=40)  # filling in the form
        self.emitter.signed_up_at = self.day_start + timedelta(milliseconds=self.t + form_ms)
        self.identify(form_ms)
        method = rng.choices(["email", "google", "apple"], weights=[55, 35, 10])[0]
        self.track("Signed Up", {"method": method, "role": p.role})
        if rng.random() < 0.3:
            self._emit("alias", self.quick())
        if p.agency:
            self.group()


_APP_SCREENS = {"Listing": "Listing Detail", "Become a Host": "Host Onboarding"}


# --------------------------------------------------------------------------- the day


def _session_starts(rng: random.Random, count: int) -> list[int]:
    hours = rng.choices(range(24), weights=HOURLY_WEIGHTS, k=count)
    return sorted(h * 3_600_000 + rng.randrange(3_600_000) for h in hours)


def generate_day(day: date, people: int = 300, seed: int = 7) -> list[Call]:
    """Every Segment call Nestful's users make on ``day`` (UTC), sorted by timestamp."""
    if isinstance(day, datetime) or not isinstance(day, date):
        raise TypeError(f"day must be a datetime.date, got {day!r}")
    if people < 0:
        raise ValueError(f"people must be >= 0, got {people}")
    catalog = _build_catalog(seed)
    day_start = datetime.combine(day, time(0), tzinfo=UTC)
    day_epoch_ms = int(day_start.timestamp() * 1000)
    calls: list[Call] = []
    used_session_ids: set[int] = set()
    for index in range(people):
        person = _make_person(seed, index, day)
        rng = random.Random(f"nestful/{seed}/{day.isoformat()}/{index}")
        emitter = _Emitter(seed, day, person, calls)
        count = max(
            1, round(rng.choices([1, 2, 3, 4, 5, 6, 7, 8], weights=[8, 14, 17, 17, 14, 11, 9, 10])[0] * person.activity)
        )
        starts = _session_starts(rng, count)
        # "Later within the day": not in their first visit when they have several.
        signup_session = (rng.randrange(1, count) if count > 1 else 0) if person.signs_up else None
        identified = person.known
        earliest = 0
        for k, planned in enumerate(starts):
            start = max(planned, earliest)
            if start > DAY_MS - 120_000:
                break
            session_id = day_epoch_ms + start
            while session_id in used_session_ids:  # RudderStack ids are per device; ours are unique per day too
                session_id += 1
                start += 1
            used_session_ids.add(session_id)
            # A visit that ended before the sign-up step carries the intent to the next one.
            pending_signup = signup_session is not None and k >= signup_session and not identified
            session = _Session(
                rng,
                emitter,
                catalog,
                day_start,
                start,
                session_id,
                identified,
                signup_step=rng.randint(1, 4) if pending_signup else None,
            )
            end = session.run()
            identified = session.identified
            earliest = end + rng.randint(5, 90) * 60_000
    calls.sort(key=lambda c: c.kwargs["timestamp"])
    return calls


def summarize(calls: list[Call]) -> dict:
    """Counts the demo prints after sending: what kind of day was that?"""
    by_method: Counter = Counter()
    by_event: Counter = Counter()
    by_view: Counter = Counter()
    users, anonymous_ids, sessions = set(), set(), set()
    for call in calls:
        kw = call.kwargs
        by_method[call.method] += 1
        if call.method == "track":
            by_event[kw["event"]] += 1
        elif call.method in ("page", "screen"):
            by_view[kw.get("name") or "(unnamed)"] += 1
        if kw.get("user_id"):
            users.add(kw["user_id"])
        if kw.get("anonymous_id"):
            anonymous_ids.add(kw["anonymous_id"])
        session_id = (kw.get("context") or {}).get("sessionId")
        if session_id is not None:
            sessions.add(session_id)
    return {
        "calls": len(calls),
        "by_method": dict(sorted(by_method.items())),
        "by_event": dict(by_event.most_common()),
        "by_view": dict(by_view.most_common()),
        "users": len(users),
        "anonymous_ids": len(anonymous_ids),
        "sessions": len(sessions),
        "first_timestamp": calls[0].timestamp.isoformat() if calls else None,
        "last_timestamp": calls[-1].timestamp.isoformat() if calls else None,
    }

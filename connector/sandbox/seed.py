"""What the sandbox helpdesks hold: customers and tickets for the five bundled contracts.

The content is helpdesk-neutral (`SeedCustomer`, `SeedTicket`); `connector.sandbox.zendesk` and
`connector.sandbox.freshdesk` write it in each helpdesk's own shapes, with the field ids and keys
of `mappings/helpdesks/*.example.yaml`, so both helpdesks hold the same logical tickets under
the same ids. Times are offsets from an `anchor` (the sandbox clock when seeding), so a seeded
sandbox always looks like a live helpdesk: recent tickets, some answered, some solved.

Values were picked from the bundled contract files: severities, plans,
offices, regions, pixelz orders (images, expedite), solidxperts scope (categories, excluded
products), subscriptions (seats, start, kind), plus two tickets no mapping can place (an unknown
plan, no organization) so the `sla_unmapped` path has something to chew on.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

__all__ = [
    "CATEGORIES",
    "CUSTOMERS",
    "SEVERITIES",
    "SeedCustomer",
    "SeedTicket",
    "bundled_tickets",
    "generate",
]


# Every severity and category value the bundled contracts use.
SEVERITIES = (
    "sev1", "sev2", "sev3", "sev4", "critical", "severe", "major", "moderate", "minor",
    "limited", "information",
)  # fmt: skip
CATEGORIES = (
    "order", "inquiry", "software_error", "license", "installation", "major_upgrade",
    "service_pack", "how_to", "configuration", "it_infrastructure", "training",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SeedCustomer:
    """One customer: a Zendesk organization and a Freshdesk company with the same id."""

    id: int
    name: str
    domain: str
    contract: str | None
    plan: str | None = None
    region: str | None = None
    seats: int | None = None
    subscription_start: date | None = None
    subscription_kind: str | None = None
    active: bool | None = None
    timezone: str | None = None
    offices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SeedTicket:
    """One ticket as both helpdesks hold it; `priority` and `status` in Zendesk's words."""

    id: int
    subject: str
    created_at: datetime
    customer_id: int | None
    severity: str | None = None
    severity_override: str | None = None
    category: str | None = None
    product: str | None = None
    images: int | None = None
    expedite: bool | None = None
    priority: str | None = None  # low, normal, high, urgent
    status: str = "open"  # new, open, pending, solved
    tags: tuple[str, ...] = ()
    first_reply_at: datetime | None = None
    solved_at: datetime | None = None
    workaround_at: datetime | None = None
    delivered_at: datetime | None = None


CUSTOMERS: tuple[SeedCustomer, ...] = (
    # photoprism: plans professional / enterprise / gold, one Berlin calendar.
    SeedCustomer(101, "Lumen Archiv GmbH", "lumen-archiv.example", "photoprism", plan="gold",
                 timezone="Europe/Berlin", seats=40, subscription_start=date(2025, 3, 1),
                 subscription_kind="annual", active=True),
    SeedCustomer(102, "Fotohaus Brandt", "fotohaus-brandt.example", "photoprism",
                 plan="enterprise", timezone="Europe/Berlin", seats=12,
                 subscription_start=date(2025, 10, 15), subscription_kind="annual", active=True),
    SeedCustomer(103, "Pixelwerk Studio", "pixelwerk.example", "photoprism",
                 plan="professional", timezone="Europe/Vienna", seats=3,
                 subscription_start=date(2026, 1, 1), subscription_kind="monthly", active=True),
    # pix4d-premium: offices lausanne / denver / tokyo or a union; none -> sla_defaulted.
    SeedCustomer(201, "Alpine Survey SA", "alpine-survey.example", "pix4d-premium",
                 offices=("lausanne",), timezone="Europe/Zurich", seats=8),
    SeedCustomer(202, "Front Range Mapping", "front-range.example", "pix4d-premium",
                 offices=("denver", "tokyo"), timezone="America/Denver", seats=25),
    SeedCustomer(203, "Kanto Drone Works", "kanto-drone.example", "pix4d-premium",
                 offices=("tokyo",), timezone="Asia/Tokyo", seats=5),
    SeedCustomer(204, "Nordic Geodata AS", "nordic-geodata.example", "pix4d-premium",
                 timezone="Europe/Oslo", seats=6),
    # pix4dengine-enterprise: the region chooses the calendar.
    SeedCustomer(301, "Cascade Agritech", "cascade-agritech.example", "pix4dengine-enterprise",
                 region="north_america", timezone="America/Los_Angeles", seats=60),
    SeedCustomer(302, "Outback Aerial Pty", "outback-aerial.example", "pix4dengine-enterprise",
                 region="australia", timezone="Australia/Perth", seats=15),
    SeedCustomer(303, "Rhone Valley Robotics", "rhone-robotics.example",
                 "pix4dengine-enterprise", region="europe", timezone="Europe/Zurich", seats=30),
    SeedCustomer(304, "Sahel Imaging", "sahel-imaging.example", "pix4dengine-enterprise",
                 region="africa", timezone="Africa/Dakar", seats=7),
    # pixelz: deadlines in the customer's zone.
    SeedCustomer(401, "Maison Lumiere Boutique", "maison-lumiere.example", "pixelz",
                 timezone="Europe/Paris", seats=4),
    SeedCustomer(402, "Pacific Outfitters", "pacific-outfitters.example", "pixelz",
                 timezone="America/Los_Angeles", seats=18),
    # solidxperts: seats decide grace calls; qsc/qlc and inactive subscriptions get none.
    SeedCustomer(501, "Atelier Beaulieu inc.", "atelier-beaulieu.example", "solidxperts",
                 seats=4, subscription_start=date(2025, 9, 1), subscription_kind="annual",
                 active=True, timezone="America/Toronto"),
    SeedCustomer(502, "Usinage Laurentides", "usinage-laurentides.example", "solidxperts",
                 seats=12, subscription_start=date(2024, 11, 20), subscription_kind="annual",
                 active=True, timezone="America/Toronto"),
    SeedCustomer(503, "Conception Gaspe", "conception-gaspe.example", "solidxperts",
                 seats=20, subscription_start=date(2026, 2, 1), subscription_kind="qsc",
                 active=True, timezone="America/Toronto"),
    SeedCustomer(504, "Metallerie Saguenay", "metallerie-saguenay.example", "solidxperts",
                 seats=2, subscription_start=date(2023, 5, 1), subscription_kind="annual",
                 active=False, timezone="America/Toronto"),
    # Deliberately unmappable: a plan photoprism does not sell.
    SeedCustomer(901, "Mystery Holdings", "mystery.example", "photoprism", plan="platinum",
                 timezone="Europe/Berlin"),
)  # fmt: skip


def bundled_tickets(anchor: datetime) -> tuple[SeedTicket, ...]:
    """The hand-written tickets, created between 30 days and 2 hours before `anchor`."""

    def ago(hours: float) -> datetime:
        return (anchor - timedelta(hours=hours)).replace(microsecond=0)

    def t(id: int, subject: str, hours: float, customer: int | None, **kw: object) -> SeedTicket:
        return SeedTicket(id, subject, ago(hours), customer, **kw)  # type: ignore[arg-type]

    return (
        # photoprism
        t(1001, "Library import stalls at 40%", 6, 101, severity="sev1", priority="urgent"),
        t(1002, "Face recognition misses new uploads", 30, 101, severity="sev2",
          priority="normal", first_reply_at=ago(28), status="open"),
        t(1003, "Backup restore question", 200, 101, severity="sev3", priority="normal",
          first_reply_at=ago(190), solved_at=ago(150), status="solved"),
        t(1004, "WebDAV sync drops sidecar files", 50, 102, severity="sev2", priority="high"),
        t(1005, "Dark mode request", 20, 103, severity="sev4", priority="low"),
        t(1006, "Login loop after upgrade", 3, 103, severity="sev1", priority="normal"),
        # pix4d-premium
        t(2001, "Processing fails on step 2 (dense cloud)", 2, 201, severity="critical",
          priority="urgent"),
        t(2002, "GCP marks shift after reoptimise", 26, 202, severity="minor",
          severity_override="severe", priority="normal", first_reply_at=ago(25)),
        t(2003, "Licence transfer to new laptop", 72, 203, severity="information",
          priority="low", first_reply_at=ago(70), solved_at=ago(48), status="solved"),
        t(2004, "Orthomosaic seams visible", 10, 204, severity="severe", priority="high"),
        # pix4dengine-enterprise (recurring response)
        t(3001, "SDK crashes on ARM build", 5, 301, severity="critical", priority="urgent",
          first_reply_at=ago(4)),
        t(3002, "Camera model database outdated", 40, 302, severity="moderate",
          priority="normal"),
        t(3003, "Python bindings memory leak", 12, 303, severity="major", priority="high",
          first_reply_at=ago(9)),
        t(3004, "Docs: tiling parameters", 100, 304, severity="limited", priority="low",
          first_reply_at=ago(90), solved_at=ago(60), status="solved"),
        # pixelz: orders (images, expedite) and inquiries
        t(4001, "Order #88121: 35 product shots", 4, 401, category="order", images=35,
          expedite=True, priority="high"),
        t(4002, "Order #88122: spring catalogue", 8, 401, category="order", images=250,
          expedite=False, priority="normal"),
        t(4003, "Which background colours do you offer?", 7, 402, category="inquiry",
          priority="normal", first_reply_at=ago(6)),
        t(4004, "Order #88090: delivered", 60, 402, category="order", images=12,
          expedite=False, priority="normal", delivered_at=ago(45), status="solved",
          solved_at=ago(45)),
        # solidxperts: entitlement decided by scope, installations and grace calls
        t(5001, "Crash when opening assembly", 9, 501, category="software_error",
          priority="normal"),
        t(5002, "How do I create a sheet metal flange?", 30, 501, category="how_to",
          priority="normal"),
        t(5003, "PDM vault replication error", 15, 502, category="software_error",
          product="pdm", priority="high"),
        t(5004, "Install on second workstation", 80, 502, category="installation",
          priority="normal", first_reply_at=ago(78), solved_at=ago(70), status="solved"),
        t(5005, "Training for new hires", 22, 503, category="training", priority="low"),
        t(5006, "Licence activation fails", 11, 504, category="license", priority="normal"),
        t(5007, "SWOOD nesting question", 4, 502, category="configuration", product="swood",
          priority="normal", status="pending", first_reply_at=ago(3)),
        # unmappable: unknown plan; no organization at all
        t(9001, "Urgent: nothing works", 5, 901, severity="sev1", priority="urgent"),
        t(9002, "Question from the web form", 14, None, priority="normal", status="new"),
    )  # fmt: skip


_MAPPABLE = tuple(c for c in CUSTOMERS if c.id < 900)
_SEVERITIES = {
    "photoprism": ("sev1", "sev2", "sev3", "sev4"),
    "pix4d-premium": ("critical", "severe", "minor", "information"),
    "pix4dengine-enterprise": ("critical", "major", "moderate", "limited"),
}
_PRIORITY_OF = ("urgent", "high", "normal", "low")
_SOLIDX_CATEGORIES = ("software_error", "license", "installation", "how_to", "configuration")


def generate(
    n: int, seed: int, anchor: datetime, *, first_id: int = 100_001, days: int = 60
) -> Iterator[SeedTicket]:
    """`n` tickets for load runs, lazily and deterministically (same `seed`, same tickets).

    Tickets go to the bundled customers, created over the `days` before `anchor` (never in its
    last hour) in id order, a third of them answered and a sixth solved.
    """
    rng = random.Random(seed)
    span = max(days * 86_400 - 3_600, 1)
    start = anchor - timedelta(days=days)
    for index in range(n):
        customer = _MAPPABLE[rng.randrange(len(_MAPPABLE))]
        contract = customer.contract or ""
        created = (start + timedelta(seconds=span * index // max(n, 1))).replace(microsecond=0)
        roll = rng.random()
        replied = solved = None
        if roll < 0.33:
            replied = created + timedelta(minutes=rng.randrange(5, 600))
            if roll < 0.16:
                solved = replied + timedelta(hours=rng.randrange(1, 48))
        severity = category = product = None
        images = None
        expedite = None
        if contract in _SEVERITIES:
            level = rng.randrange(4)
            severity = _SEVERITIES[contract][level]
            priority = _PRIORITY_OF[level]
        elif contract == "pixelz":
            category = "order" if rng.random() < 0.7 else "inquiry"
            if category == "order":
                images = rng.randrange(1, 120)
                expedite = rng.random() < 0.2
            priority = "high" if expedite else "normal"
        else:
            category = _SOLIDX_CATEGORIES[rng.randrange(len(_SOLIDX_CATEGORIES))]
            product = "pdm" if rng.random() < 0.05 else None
            priority = "normal"
        yield SeedTicket(
            id=first_id + index,
            subject=f"Load ticket {first_id + index}",
            created_at=created,
            customer_id=customer.id,
            severity=severity,
            category=category,
            product=product,
            images=images,
            expedite=expedite,
            priority=priority,
            status="solved" if solved is not None else "open",
            first_reply_at=replied,
            solved_at=solved,
        )

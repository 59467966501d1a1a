"""Generate PrefLab's demo dataset: synthetic incident reports to triage (``data/incidents.jsonl``).

Every row is one fictional incident report, written in one of several styles (pager alert, support
ticket, Slack message, postmortem opener, monitoring dump, non-native English, bullet list, long
rambling message), wrapped in one fixed triage instruction, with a gold answer in a strict format::

    Severity: SEV2
    Summary: <one sentence>.
    Next steps:
    - <2 to 4 concrete bullets>

Reports are composed from independent building blocks: a scenario per (category, severity) with
randomly drawn concrete facts (service, region, time zone, numbers, cause, what was already tried),
rendered by a style template. The gold severity follows ``SEVERITY_RUBRIC`` (models/judge_rubric.py): each scenario
states the facts that put it at its level. Everything is driven by one ``random.Random(seed)``;
``build(seed)`` is pure and ``main()`` writes ``incidents.jsonl`` and ``severity_rubric.md``.

Run: ``python data/make_incidents.py`` (from anywhere; outputs land next to this file).
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path
from random import Random

SEED = 20240917
N_REPORTS = 340
HELDOUT_FRACTION = 0.18
MIN_WORDS, MAX_WORDS = 40, 250
MAX_JACCARD = 0.42  # generator-side cap on word-trigram Jaccard between reports (the test allows < 0.5)

HERE = Path(__file__).resolve().parent
OUT_PATH = HERE / "incidents.jsonl"
RUBRIC_PATH = HERE / "severity_rubric.md"

# The task wording, the severity scale and the judge's rubric have one copy, in models/judge_rubric.py: the
# judge ships with the package, this script does not. The repository root goes on the path for the direct run.
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))
from models.judge_rubric import DEFAULT_RUBRIC as JUDGE_RUBRIC_MD  # noqa: E402
from models.judge_rubric import SEVERITY_SCALE as SEVERITY_RUBRIC  # noqa: E402, F401 - the gold follows it
from models.judge_rubric import TRIAGE_INSTRUCTION as INSTRUCTION  # noqa: E402

# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------

# fmt: off
# name, tier, what it is, what users do with it, owning team, endpoint, who uses it
_SERVICES = [
    ("checkout-api", "critical", "the checkout API", "complete checkout", "payments", "POST /v2/checkout", "shoppers"),
    ("payment-gateway", "critical", "the payment gateway", "pay for orders", "payments", "POST /charges", "customers"),
    ("auth-service", "critical", "the auth service", "log in", "identity", "POST /oauth/token", "users"),
    ("login-web", "critical", "the web login page", "sign in on the website", "identity", "GET /login", "users"),
    ("cart-service", "critical", "the cart service", "add items to their cart", "commerce", "PUT /cart/items", "shoppers"),
    ("order-service", "critical", "the order service", "place orders", "commerce", "POST /orders", "customers"),
    ("billing-api", "critical", "the billing API", "pay invoices", "billing", "POST /invoices/pay", "merchants"),
    ("api-gateway", "critical", "the public API gateway", "call the public API", "platform", "ANY /v1/*", "API clients"),
    ("mobile-bff", "critical", "the mobile backend-for-frontend", "use the mobile app", "mobile", "GET /bff/home", "app users"),
    ("subscription-manager", "critical", "the subscription service", "start or renew subscriptions", "billing", "POST /subscriptions", "subscribers"),
    ("ledger-writer", "critical", "the ledger writer", "see correct account balances", "finance-eng", "POST /ledger/entries", "account holders"),
    ("transfer-service", "critical", "the money transfer service", "send transfers", "payments", "POST /transfers", "account holders"),
    ("booking-engine", "critical", "the booking engine", "book appointments", "marketplace", "POST /bookings", "patients"),
    ("session-store", "critical", "the session store", "stay logged in", "identity", "GET /sessions", "users"),
    ("search-api", "facing", "product search", "search the catalog", "discovery", "GET /search", "shoppers"),
    ("search-indexer", "facing", "the search indexer", "find newly listed items", "discovery", "POST /index/batch", "sellers"),
    ("recommendations-svc", "facing", "the recommendations service", "see personalised recommendations", "personalization", "GET /recs", "shoppers"),
    ("reviews-service", "facing", "product reviews", "read and post reviews", "catalog", "GET /reviews", "shoppers"),
    ("notification-dispatcher", "facing", "the notification dispatcher", "receive push notifications", "messaging", "POST /notify", "app users"),
    ("email-sender", "facing", "the transactional email sender", "receive order emails", "messaging", "POST /mail/send", "customers"),
    ("sms-relay", "facing", "the SMS relay", "receive SMS codes", "messaging", "POST /sms", "users"),
    ("image-resizer", "facing", "the image resizing service", "see product images", "media", "GET /img/resize", "shoppers"),
    ("wishlist-api", "facing", "the wishlist API", "save items to wishlists", "commerce", "POST /wishlist", "shoppers"),
    ("profile-service", "facing", "the profile service", "edit their profiles", "identity", "PATCH /me", "users"),
    ("catalog-service", "facing", "the catalog service", "browse product pages", "catalog", "GET /products", "shoppers"),
    ("pricing-engine", "facing", "the pricing engine", "see correct prices", "commerce", "GET /prices", "shoppers"),
    ("shipping-quotes", "facing", "the shipping quote service", "get delivery estimates", "logistics", "POST /quotes", "customers"),
    ("inventory-sync", "facing", "inventory sync", "see accurate stock levels", "logistics", "POST /inventory/sync", "shoppers"),
    ("media-origin", "facing", "the media origin", "load videos", "media", "GET /media", "viewers"),
    ("help-center-web", "facing", "the help center", "read help articles", "support-eng", "GET /help", "customers"),
    ("loyalty-points", "facing", "the loyalty points service", "redeem points", "growth", "POST /points/redeem", "members"),
    ("geo-locator", "facing", "the store locator", "find nearby stores", "growth", "GET /stores/near", "customers"),
    ("chat-widget", "facing", "the live chat widget", "chat with support", "support-eng", "WS /chat", "customers"),
    ("invoice-renderer", "facing", "the invoice PDF renderer", "download invoices", "billing", "GET /invoices/pdf", "merchants"),
    ("events-ingest", "data", "the events ingestion pipeline", "see fresh event data", "data-platform", "POST /events", "analysts"),
    ("clickstream-collector", "data", "the clickstream collector", "see clickstream data", "data-platform", "POST /collect", "analysts"),
    ("etl-nightly", "data", "the nightly ETL", "see yesterday's numbers", "data-eng", "job etl_nightly", "analysts"),
    ("warehouse-loader", "data", "the warehouse loader", "query fresh warehouse tables", "data-eng", "job load_warehouse", "analysts"),
    ("feature-store", "data", "the feature store", "read model features", "ml-platform", "GET /features", "ML engineers"),
    ("reporting-exporter", "data", "the reporting exporter", "download scheduled reports", "data-eng", "job export_reports", "account managers"),
    ("metrics-rollup", "data", "the metrics rollup job", "read aggregated KPIs", "data-platform", "job rollup_hourly", "analysts"),
    ("ledger-reconciler", "data", "the ledger reconciliation job", "close the books", "finance-eng", "job reconcile", "finance"),
    ("ml-training-pipeline", "data", "the ML training pipeline", "retrain models", "ml-platform", "job train_daily", "ML engineers"),
    ("customer-360-sync", "data", "the customer 360 sync", "see CRM customer data", "data-eng", "job c360_sync", "sales"),
    ("ci-runner", "internal", "the CI runners", "run CI builds", "dev-productivity", "job ci", "engineers"),
    ("deploy-bot", "internal", "the deploy bot", "ship deploys", "dev-productivity", "slash command /deploy", "engineers"),
    ("admin-console", "internal", "the admin console", "manage customer accounts", "internal-tools", "GET /admin", "support agents"),
    ("feature-flags-ui", "internal", "the feature flag UI", "toggle feature flags", "platform", "GET /flags", "engineers"),
    ("build-cache", "internal", "the remote build cache", "get cached builds", "dev-productivity", "GET /cache", "engineers"),
    ("artifact-registry", "internal", "the artifact registry", "pull container images", "platform", "GET /v2/images", "engineers"),
    ("log-shipper", "internal", "the log shipper", "search recent logs", "observability", "agent", "engineers"),
    ("internal-wiki", "internal", "the internal wiki", "read runbooks", "it-ops", "GET /wiki", "employees"),
    ("vpn-gateway", "internal", "the corporate VPN", "reach internal tools", "it-ops", "vpn", "employees"),
    ("backoffice-crm", "internal", "the back-office CRM", "look up customer history", "internal-tools", "GET /crm", "support agents"),
    ("oncall-scheduler", "internal", "the on-call scheduler", "see who is on call", "observability", "GET /schedules", "engineers"),
    ("expense-portal", "internal", "the expense portal", "submit expenses", "it-ops", "GET /expenses", "employees"),
    ("qa-sandbox", "internal", "the QA sandbox", "run manual QA", "quality", "GET /sandbox", "testers"),
    ("warehouse-scanner-app", "internal", "the warehouse scanner app", "scan parcels", "logistics", "POST /scan", "warehouse staff"),
]

REVENUE_SERVICES = {
    "billing-api", "booking-engine", "cart-service", "checkout-api", "order-service", "payment-gateway",
    "subscription-manager", "transfer-service"
}

SERVICES = [dict(zip(("name", "tier", "what", "action", "team", "endpoint", "noun"), row, strict=True)) for row in _SERVICES]
SERVICE_NAMES = {s["name"] for s in SERVICES}

REGIONS = [
    "us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1", "ap-northeast-1", "sa-east-1",
    "ca-central-1", "europe-west4", "asia-south1", "fra1", "iad2"
]

# label, offset in minutes, 12-hour clock?
TIMEZONES = [
    ("UTC", 0, False), ("UTC", 0, False), ("PST", -480, True), ("PDT", -420, True), ("EST", -300, True),
    ("EDT", -240, True), ("CET", 60, False), ("CEST", 120, False), ("BST", 60, False), ("IST", 330, False),
    ("JST", 540, False), ("SGT", 480, False), ("AEST", 600, False), ("BRT", -180, False),
]

NAMES = [
    "Priya", "Tomasz", "Aiko", "Mateo", "Fatima", "Jonas", "Wei", "Olu", "Sven", "Lucía", "Dmitri", "Amara",
    "Kenji", "Chloe", "Rahul", "Ingrid", "Youssef", "Mei", "Carlos", "Hannah", "Nikhil", "Zara", "Björn",
    "Ana", "Kofi", "Leila", "Marco", "Sara", "Tariq", "Elena", "Gabe", "Ifeoma", "Hiro", "Noor", "Pavel",
]

ROLES = [
    "SRE on call", "backend engineer", "platform engineer", "tier-2 support agent", "engineering manager",
    "data engineer", "security engineer", "mobile engineer", "QA lead", "site reliability lead",
    "customer success manager", "staff engineer",
]

COMPANIES = [
    "Northwind Outfitters", "Bluefin Logistics", "Copperleaf Dental", "Harbor & Pine", "Lumen Bakery Co",
    "Quayside Travel", "Redwood Clinics", "Sable Fitness", "Tessellate Studio", "Orchid Pharmacy",
    "Kestrel Books", "Vantage Realty", "Meridian Pet Supply", "Juniper Schools", "Atlas Freight",
    "Nimbus Games",
]

VENDORS = {
    "payments": [("Chargewell", "payment processor"), ("PayStream", "card acquirer")],
    "billing": [("Chargewell", "payment processor"), ("Quotient Tax", "tax calculation API")],
    "identity": [("Idently", "identity provider"), ("Textora", "SMS provider")],
    "messaging": [("Mailfinch", "email delivery provider"), ("Textora", "SMS provider"), ("Pushwave", "push provider")],
    "logistics": [("ShipRoute", "carrier rates API"), ("Geomancer", "geocoding API")],
    "media": [("EdgeNimbus", "CDN"), ("EdgeNimbus", "CDN")],
    "growth": [("Geomancer", "geocoding API"), ("Mailfinch", "email delivery provider")],
}
GENERIC_VENDORS = [
    ("Stratus DB", "managed Postgres provider"),
    ("EdgeNimbus", "CDN"),
    ("Zonefile", "DNS provider"),
    ("Quarry Cloud", "object storage provider"),
    ("Kafkaesque Cloud", "managed Kafka provider"),
]
# fmt: on

RAMBLE_FILLERS = [
    "Sorry if this is the wrong channel, I wasn't sure whether to post here or in the team room.",
    "I was halfway through reviewing a pull request when I noticed, so I might be missing context.",
    "Not sure if this is related to the thing from last week, but it feels vaguely similar.",
    "Also my laptop decided to install updates right at that moment, so I lost a few minutes there.",
    "I pinged a couple of people directly but it's early for most of them.",
    "I might be overthinking this but I'd rather flag it than sit on it.",
    "For what it's worth the dashboards have been a bit flaky lately, so take the graphs with a grain of salt.",
    "Someone mentioned at standup that some maintenance was planned this week, no idea if that matters.",
    "I don't have prod access to everything, so I could only look at what's on the shared dashboards.",
    "I'll keep poking at it in the meantime.",
    "Apologies for the wall of text, I'm trying to get everything down before I forget it.",
    "The runbook link in the alert points to a page that was archived, which didn't help.",
    "I asked the person sitting next to me and they hadn't seen this before either.",
    "We had a similar scare a few months ago that turned out to be nothing, but this one looks different to me.",
    "I'll update this thread if I find anything else.",
    "There's also the release freeze starting Friday, which makes the timing a bit awkward.",
    "My first thought was that it was my VPN, but a colleague sees the same thing from home.",
    "Technically I'm not on call this week, I just happened to be looking at the graphs.",
    "The service catalog still lists an owner who left the company, so I wasn't sure who to ping.",
    "I grabbed a couple of screenshots, happy to share them if that helps anyone.",
    "Honestly it took me a while to even find the right dashboard, we have about five of them.",
    "I'm on a train with patchy wifi so replies from me might be slow.",
    "Not trying to cause a panic, just want more eyes on it than mine.",
    "I also checked whether any of the scheduled jobs kicked off around then, nothing obvious.",
    "If someone already has a ticket open for this, feel free to merge this into it.",
    "I did look for an existing incident channel first and couldn't find one.",
    "This is the second time this month something odd has happened around this hour, which may be a coincidence.",
    "The weird part is that nothing in the change calendar lines up with it.",
    "I'm going to step out for a quick call at the top of the hour but will be back right after.",
    "I know half the team is at the offsite, so sorry for the noise.",
]

SLACK_OPENERS = [
    "@here",
    ":rotating_light:",
    "hey folks,",
    "heads up,",
    "quick one,",
    "anyone else seeing this?",
    ":eyes:",
    "flagging something:",
    "hi team,",
    ":fire:",
    "FYI",
    "so,",
]


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _hm(dt: datetime, tz: tuple) -> str:
    label, _off, twelve = tz
    if twelve:
        h = dt.hour % 12 or 12
        return f"{h}:{dt.minute:02d} {'AM' if dt.hour < 12 else 'PM'} {label}"
    return f"{dt.hour:02d}:{dt.minute:02d} {label}"


def _pct(x: float) -> str:
    return f"{x:.1f}%" if x < 10 else f"{x:.0f}%"


def _hexid(r: Random, n: int = 7) -> str:
    return "".join(r.choice("0123456789abcdef") for _ in range(n))


def _sample(r: Random, items: list, k: int) -> list:
    k = max(0, min(k, len(items)))
    return r.sample(items, k)


def _context(r: Random, svc: dict) -> dict:
    tz = r.choice(TIMEZONES)
    start = datetime(2024, 1, 1) + timedelta(days=r.randrange(0, 640), minutes=r.randrange(0, 24 * 60))
    mins = r.choice([6, 8, 11, 14, 17, 20, 23, 27, 31, 36, 42, 48, 55, 63, 75, 90, 110, 140])
    region = r.choice(REGIONS)
    others = [x for x in REGIONS if x != region]
    major, minor, patch = r.randint(1, 9), r.randint(0, 48), r.randint(1, 19)
    ver = f"v{major}.{minor}.{patch}"
    prev = (
        f"v{major}.{minor}.{patch - 1}"
        if r.random() < 0.6
        else f"v{major}.{max(minor - 1, 0)}.{r.randint(0, 9)}"
    )
    if r.random() < 0.3:
        ver, prev = f"build {_hexid(r)}", f"build {_hexid(r)}"
    who, who2 = _sample(r, NAMES, 2)
    team = svc["team"]
    vendor = r.choice(VENDORS.get(team, GENERIC_VENDORS))
    c = {
        "svc": svc,
        "n": svc["name"],
        "what": svc["what"],
        "action": svc["action"],
        "team": team,
        "endpoint": svc["endpoint"],
        "noun": svc["noun"],
        "tier": svc["tier"],
        "region": region,
        "other": r.choice(others),
        "tz": tz,
        "start_dt": start,
        "time": _hm(start, tz),
        "now": _hm(start + timedelta(minutes=mins), tz),
        "mins": mins,
        "date": start.strftime("%Y-%m-%d"),
        "weekday": start.strftime("%A"),
        "ver": ver,
        "prev": prev,
        "chg": f"CHG-{r.randint(1000, 99999)}",
        "who": who,
        "who2": who2,
        "role": r.choice(ROLES),
        "cust": r.choice(COMPANIES),
        "vendor": vendor[0],
        "vendor_kind": vendor[1],
        "inc": f"INC-{r.randint(1000, 9999)}",
        "ticket": r.randint(10000, 999999),
        "pods": r.choice([6, 8, 12, 16, 24, 32, 48]),
    }
    c["at"] = lambda m: _hm(start + timedelta(minutes=m), tz)  # noqa: E731 - local time helper
    return c


def _steps(r: Random, first: list[str], rest: list[str], lo: int = 2, hi: int = 4) -> list[str]:
    """Gold bullets: one of ``first`` (names the fix), then a sample of ``rest`` in its order."""
    k = r.randint(lo, hi)
    head = [r.choice(first)]
    idx = sorted(_sample(r, list(range(len(rest))), k - 1))
    return head + [rest[i] for i in idx]


# --------------------------------------------------------------------------------------------
# Scenarios: one function per (category, severity). Each returns the facts a style renders.
#   title     short headline                     symptoms  list of factual sentences
#   impact    the sentence that fixes severity   cust      what a customer would write, or None
#   metrics   [(metric, value, threshold)]       cause     suspected cause sentence, or None
#   tried     past-tense actions already taken   workaround sentence or None
#   ask       what the reporter wants            summary, steps: the gold answer
# --------------------------------------------------------------------------------------------


def outage_1(r, c):
    n, err = (
        c["n"],
        r.choice(
            [
                ("HTTP 503 Service Unavailable", "503s"),
                ("502 Bad Gateway from the load balancer", "502s"),
                ("gateway timeouts after 30 seconds", "timeouts"),
                ("connection resets because every pod is crashlooping", "crashlooping pods"),
                ("'connection refused' errors", "connection refused errors"),
            ]
        ),
    )
    pct = r.choice([94, 96, 97, 98, 99, 100, 100, 100])
    cause_kind = r.choice(["deploy", "config", "db", "secret", "dns"])
    td = c["at"](-r.randint(2, 6))
    cause, fix = {
        "deploy": (
            f"The first errors line up with the {c['ver']} rollout that finished at {td}.",
            f"Roll back {n} from {c['ver']} to {c['prev']} and confirm the error rate drops below 1%.",
        ),
        "config": (
            f"A config change to the {n} connection pool settings ({c['chg']}) was pushed at {td}.",
            f"Revert {c['chg']} on {n} and restart the pods so they reload the old connection pool settings.",
        ),
        "db": (
            f"The primary database behind {n} failed over at {td} and the app never reconnected to the new primary.",
            f"Force {n} to reconnect to the new database primary (rolling restart) and check the failover left no replica lag.",
        ),
        "secret": (
            f"Logs are full of 'password authentication failed' for the {n} database user; a secret rotation ran at {td}.",
            f"Re-sync the rotated database secret to {n} and restart the pods.",
        ),
        "dns": (
            f"The internal DNS record for {n} was changed at {td} and now points at a drained load balancer.",
            f"Point the {n} DNS record back at the active load balancer and flush resolver caches.",
        ),
    }[cause_kind]
    opm = r.choice([120, 340, 800, 1500, 2600, 4100])
    impact = r.choice(
        [
            f"{pct}% of {c['endpoint']} requests are failing in every region, so {c['noun']} cannot {c['action']} at all.",
            f"Nobody can {c['action']} right now: {pct}% of requests to {n} fail, all regions.",
            f"This is a full outage of {c['what']}; {c['noun']} cannot {c['action']} and successful requests went from about {opm}/min to near zero ({pct}% failing).",
        ]
    )
    symptoms = [
        f"{n} returns {err[0]} on {c['endpoint']}.",
        r.choice(
            [
                f"Success rate for {n} fell from 99.9% to {100 - pct}% at {c['time']}.",
                f"Health checks on all {c['pods']} {n} pods are red.",
                f"Synthetic checks for {c['action']} fail from every probe location.",
            ]
        ),
    ]
    if r.random() < 0.5:
        symptoms.append(
            r.choice(
                [
                    f"Support has {r.randint(40, 400)} new tickets in the last {c['mins']} minutes.",
                    f"Social media mentions about not being able to {c['action']} are climbing.",
                    f"Revenue dashboard shows roughly ${opm * r.randint(20, 90):,} per hour lost while this lasts.",
                ]
            )
        )
    tried = _sample(
        r,
        [
            f"restarted {r.randint(2, 5)} of the {n} pods (no change)",
            "checked the load balancer target groups",
            f"scaled {n} up by {r.choice([50, 100])}%",
            "confirmed the upstream dependencies are green",
            "looked through the last hour of deploys",
        ],
        r.randint(1, 3),
    )
    steps = _steps(
        r,
        [fix],
        [
            f"Declare a SEV1, page the {c['team']} on-call and open an incident channel for {n}.",
            f"Post a status page update that {c['noun']} cannot {c['action']} and update it every 30 minutes.",
            f"Keep watching the {n} error rate after the fix and only close once {c['noun']} can {c['action']} again.",
        ],
        3,
        4,
    )
    return dict(
        title=f"{n} down: {err[1]} on {c['endpoint']}",
        alert=r.choice(["HighErrorRate", "EndpointDown", "SLOBurnRateCritical", "AvailabilityDrop"]),
        symptoms=symptoms,
        impact=impact,
        cust=f"nobody on our side can {c['action']}, we just get an error page",
        metrics=[
            ("http_5xx_ratio", f"{pct / 100:.2f}", "0.05"),
            ("success_rate", _pct(100 - pct + 0.01), "99.5%"),
            ("healthy_pods", f"{r.randint(0, 2)}/{c['pods']}", f">= {c['pods'] // 2}"),
        ],
        cause=cause,
        tried=tried,
        workaround=None,
        ask=f"Need someone from {c['team']} on this now.",
        summary=f"{n} is failing {pct}% of requests with {err[1]} in all regions since {c['time']}, so {c['noun']} cannot {c['action']}.",
        steps=steps,
    )


def outage_2(r, c):
    n = c["n"]
    kind = r.choice(["region", "platform", "share"])
    pct = r.choice([8, 12, 15, 18, 22, 27, 33, 40, 45])
    if kind == "region":
        where = f"in {c['region']}"
        impact = f"{n} is down {where} only; {c['noun']} served from {c['region']} (about {pct}% of traffic) cannot {c['action']}, other regions are healthy."
        fix = f"Shift {n} traffic out of {c['region']} to {c['other']} and confirm the other regions absorb the load."
        summary = f"{n} is failing in {c['region']} since {c['time']}, so the roughly {pct}% of {c['noun']} served there cannot {c['action']}."
    elif kind == "platform":
        plat = r.choice(["the Android app", "the iOS app", "Safari users", "the partner API"])
        where = f"for {plat}"
        impact = f"Only requests from {plat} fail ({pct}% of {c['noun']}); the web and other clients work."
        fix = f"Compare {n} request logs for {plat} with other clients to find the failing header or payload, and hotfix or roll back {c['ver']}."
        summary = f"{n} is rejecting requests from {plat} since {c['time']}, leaving about {pct}% of {c['noun']} unable to {c['action']}."
    else:
        where = "intermittently"
        impact = f"About {pct}% of {c['endpoint']} calls fail; retries sometimes work, so many {c['noun']} still get through."
        fix = f"Find the unhealthy {n} instances (the error share points at a subset of pods or one AZ) and drain them."
        summary = f"{n} has been failing about {pct}% of {c['endpoint']} requests since {c['time']}, a partial outage for {c['noun']}."
    return dict(
        title=f"partial outage of {n} {where}",
        alert=r.choice(["ErrorRateElevated", "RegionalAvailabilityLow", "PartialOutage", "ElevatedFailures"]),
        symptoms=[
            r.choice(
                [
                    f"{n} error rate jumped to {pct}% at {c['time']}.",
                    f"Roughly {pct} in 100 requests to {n} end in a 5xx.",
                    f"The {c['endpoint']} error graph for {n} stepped up to {pct}% around {c['time']}.",
                ]
            ),
            r.choice(
                [
                    f"Errors are concentrated {where}.",
                    "Latency for the requests that succeed looks normal.",
                    f"{r.randint(2, c['pods'] // 2)} of {c['pods']} pods log upstream resets.",
                ]
            ),
        ],
        impact=impact,
        cust=f"some of our people cannot {c['action']}, others can, it seems random",
        metrics=[
            ("error_ratio", f"{pct / 100:.2f}", "0.02"),
            ("requests_failed_per_min", str(r.randint(300, 9000)), "100"),
        ],
        cause=r.choice(
            [
                f"{c['ver']} went out at {c['at'](-4)}, but it also went to other places that look fine.",
                f"There was a network maintenance window at the provider around {c['time']}.",
                None,
            ]
        ),
        tried=_sample(
            r,
            [
                f"restarted the {n} pods {where}",
                "checked the provider status page (nothing posted)",
                "compared with the healthy traffic",
                "ran the smoke tests by hand",
            ],
            r.randint(1, 2),
        ),
        workaround=None,
        ask=f"Could {c['team']} take a look?",
        summary=summary,
        steps=_steps(
            r,
            [fix],
            [
                f"Open a SEV2 incident for {n} and page the {c['team']} on-call.",
                f"Post a status page notice scoped to the affected {c['noun']}.",
                f"Keep the {n} error-rate alert open until the failure share is back under 1%.",
            ],
        ),
    )


def outage_3(r, c):
    n = c["n"]
    if c["tier"] == "internal":
        wk = r.choice(
            [
                f"the {c['team']} CLI still works for the same tasks",
                "the previous version is reachable on the legacy URL",
                "people can do it by hand for now, just slower",
                "the read-only replica view works",
            ]
        )
        impact = f"Internal only: {c['noun']} cannot {c['action']}; no customers are affected and {wk}."
        summary = f"{n} is down for internal {c['noun']} since {c['time']}, with no customer impact and a workaround available."
    else:
        k = r.choice([3, 5, 7, 12, 20])
        wk = r.choice(
            ["reloading the page usually works", "the mobile app is unaffected", "the old flow still works"]
        )
        impact = f"Only {k} customer accounts have reported it, well under 1% of {c['noun']}, and {wk}."
        summary = f"{n} fails for a handful of {c['noun']} ({k} reports) since {c['time']}, a minor issue with a workaround."
    return dict(
        title=f"{n} not loading",
        alert=r.choice(["UptimeCheckFailed", "ServiceUnavailable", "ProbeFailure"]),
        symptoms=[
            r.choice(
                [
                    f"{c['what']} shows a blank page after login.",
                    f"Requests to {n} hang and then return 504.",
                    f"{n} returns 500 on {c['endpoint']}.",
                ]
            ),
            r.choice(
                [
                    "It has been like this since the morning.",
                    "It seems to affect only some accounts.",
                    f"The pod for {n} restarted {r.randint(3, 30)} times today.",
                ]
            ),
        ],
        impact=impact,
        cust=f"we cannot {c['action']} since {c['time']}",
        metrics=[("probe_success", "0", "1"), ("restarts_1h", str(r.randint(3, 30)), "3")],
        cause=r.choice(
            [
                f"Its database disk might be full, the last log line is a write error at {c['time']}.",
                f"It was moved to a new cluster on {c['weekday']}.",
                None,
            ]
        ),
        tried=_sample(
            r, [f"restarted {n}", "cleared the browser cache", "checked the ingress config"], r.randint(1, 2)
        ),
        workaround=f"Workaround: {wk}.",
        ask=f"Low urgency, but can {c['team']} pick it up today?",
        summary=summary,
        steps=_steps(
            r,
            [
                f"Check the {n} logs and pod events for the failing requests and fix what they show.",
                f"Find the cause of the {n} errors starting at {c['time']} (logs, recent changes) and fix it.",
            ],
            [
                f"Share the workaround with the affected {c['noun']} until {n} is fixed.",
                f"File a SEV3 ticket for {c['team']} and link the failing requests.",
                f"Add an uptime alert for {n} so it is caught before users report it.",
            ],
        ),
    )


def outage_4(r, c):
    n = c["n"]
    env = r.choice(["staging", "the dev cluster", "a preview environment", "the load-test environment"])
    return dict(
        title=f"{n} down in {env}",
        alert=r.choice(["StagingEndpointDown", "NonProdProbeFailed", "EnvUnavailable"]),
        symptoms=[
            f"{n} in {env} returns 503 since {c['time']}.",
            r.choice(
                [
                    "The node it runs on was recycled overnight.",
                    f"The {env} database was reset by the nightly cleanup job.",
                    "Nobody has deployed to it for two weeks.",
                ]
            ),
        ],
        impact=r.choice(
            [
                f"No production impact: this is only {env}, production {n} is healthy.",
                f"Production is fine; only {env} is affected and nobody is blocked today.",
            ]
        ),
        cust=None,
        metrics=[('probe_success{env="staging"}', "0", "1"), ("prod_error_ratio", "0.001", "0.02")],
        cause=None,
        tried=_sample(
            r, [f"checked prod {n} dashboards (all green)", "confirmed prod health checks pass"], 1
        ),
        workaround=None,
        ask="Just logging it so nobody is surprised.",
        summary=f"{n} is down in {env} only since {c['time']}, with no production or customer impact.",
        steps=_steps(
            r,
            [f"Redeploy {n} to {env} and confirm its health check passes."],
            [
                "Close the page as non-production and route future non-prod alerts to the team channel, not the pager.",
                f"Let the {c['team']} team know {env} is back before they resume testing.",
            ],
            2,
            3,
        ),
    )


def security_1(r, c):
    n = c["n"]
    logins = ("auth-service", "login-web", "session-store", "loyalty-points", "profile-service", "mobile-bff")
    kind = r.choice(["key", "sqli", "admin"] + (["stuffing", "stuffing"] if n in logins else []))
    ip = f"{r.randint(11, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"
    if kind == "key":
        key = f"AKIA{_hexid(r, 12).upper()}"
        sym = [
            f"An access key for {n} ({key[:10]}...) was pushed to a public GitHub repo at {c['time']}.",
            f"Audit logs show that key listing buckets and downloading {r.randint(40, 900)} objects from {ip}, which is not ours.",
        ]
        impact = "This is an active breach: the leaked key is being used by an outside party right now."
        steps_first = [f"Revoke the leaked {n} access key immediately and rotate every secret it could read."]
        summary = f"A leaked {n} access key is being used from an outside IP to download data since {c['time']}, an active breach."
        rest = [
            f"Block {ip} and review the audit logs for everything the key touched.",
            "Page the security incident lead, preserve logs and start the breach notification process with legal.",
            "Remove the key from the public repository history.",
        ]
    elif kind == "sqli":
        rows = r.choice([12000, 48000, 130000, 2100000])
        sym = [
            f"WAF logs show a successful SQL injection against {c['endpoint']} on {n} from {ip}.",
            f"The responses to those requests were about {r.randint(3, 40)} MB each, consistent with a dump of the users table ({rows:,} rows).",
        ]
        impact = f"Customer data appears to have been exfiltrated: up to {rows:,} user records."
        steps_first = [
            f"Block {ip} at the WAF and take the vulnerable {c['endpoint']} handler on {n} offline or patch it now."
        ]
        summary = f"{n} was hit by a successful SQL injection from {ip} that likely exfiltrated up to {rows:,} user records."
        rest = [
            "Page the security incident lead and preserve WAF and database logs as evidence.",
            "Start the breach assessment with legal to decide on customer and regulator notification.",
            "Force password resets for the exposed accounts.",
        ]
    elif kind == "admin":
        country = r.choice(["Romania", "Vietnam", "Brazil", "Nigeria", "an unknown VPN exit"])
        sym = [
            f"An admin account logged into {n} from {country} ({ip}) at {c['time']}, outside the employee's normal pattern.",
            f"The session created {r.randint(2, 6)} new API tokens and exported the customer list.",
            "The employee confirms it wasn't them.",
        ]
        impact = "Confirmed unauthorized access to an admin account with customer data exported."
        steps_first = [
            f"Disable the compromised admin account and revoke all {n} sessions and the new API tokens."
        ]
        summary = f"An attacker used a compromised admin account on {n} from {ip} to create API tokens and export customer data."
        rest = [
            "Page the security incident lead and preserve the audit trail.",
            f"Review every action taken from {ip} and check the exported data's scope for notification.",
            "Reset the employee's credentials and MFA devices.",
        ]
    else:
        k = r.choice([340, 1200, 3400, 8800])
        sym = [
            f"Login success rate on {n} from a botnet of ~{r.randint(300, 4000)} IPs went up sharply at {c['time']}.",
            f"{k:,} accounts were logged into and {r.randint(60, 900)} of them had stored value or gift cards drained.",
        ]
        impact = f"Active account takeover: {k:,} customer accounts compromised and money being moved."
        steps_first = [f"Turn on forced MFA or CAPTCHA for {n} logins and block the attacking IP ranges now."]
        summary = f"A credential-stuffing attack on {n} has taken over {k:,} customer accounts since {c['time']} and is draining stored value."
        rest = [
            "Lock the compromised accounts and reset their passwords.",
            "Freeze gift card and stored-value redemptions until the attack is contained.",
            "Page the security incident lead and start customer notification.",
        ]
    return dict(
        title=f"security: suspected breach on {n}",
        alert=r.choice(["AnomalousAccess", "GuardDutyFinding", "WAFAlertHigh", "SIEMCorrelation"]),
        symptoms=sym,
        impact=impact,
        cust=None,
        metrics=[
            ("suspicious_requests_5m", str(r.randint(200, 40000)), "50"),
            ("distinct_src_ips", str(r.randint(1, 4000)), ""),
        ],
        cause=None,
        tried=_sample(
            r,
            [
                "pulled the audit logs",
                "confirmed with the account owner",
                "took a snapshot of the affected hosts",
            ],
            r.randint(1, 2),
        ),
        workaround=None,
        ask="Security on-call please, this looks real.",
        summary=summary,
        steps=_steps(r, steps_first, rest, 3, 4),
    )


def security_2(r, c):
    n = c["n"]
    kind = r.choice(["bucket", "cve", "idor", "endpoint"])
    if kind == "bucket":
        files = r.randint(900, 90000)
        sym = [
            f"A storage bucket used by {n} has been publicly readable since a policy change at {c['time']}.",
            f"It holds {files:,} customer invoices.",
            "Access logs show no reads from outside our accounts so far.",
        ]
        impact = "Customer documents are exposed to the internet, but there is no evidence anyone outside has read them."
        fix = f"Remove public access from the {n} bucket policy now and confirm it with an anonymous request."
        summary = f"A bucket used by {n} has exposed {files:,} customer invoices publicly since {c['time']}, with no sign of access yet."
        rest = [
            "Review the bucket access logs back to the policy change to confirm nobody external read the files.",
            "Add a guardrail that blocks public bucket policies.",
        ]
    elif kind == "cve":
        cve = f"CVE-{r.choice([2024, 2025])}-{r.randint(10000, 59999)}"
        lib = r.choice(
            ["libxml-ng", "fastjson-lite", "imgparse", "tomlkit-rs", "openssh-portable", "netty-codec"]
        )
        sym = [
            f"{cve} (remote code execution, CVSS {r.choice(['9.1', '9.8', '8.8'])}) affects {lib}, which {n} uses on an internet-facing endpoint.",
            "A public proof-of-concept was released today.",
            "We see no exploitation attempts in our logs yet.",
        ]
        impact = f"{n} is exploitable from the internet but there is no sign it has been exploited."
        fix = f"Patch {lib} in {n} to the fixed release and deploy today, or put a WAF rule in front until then."
        summary = f"{n} is exposed to the remotely exploitable {cve} in {lib}, with a public exploit but no exploitation seen yet."
        rest = [
            f"Search the {n} logs for exploitation attempts since the disclosure.",
            f"Inventory other services that ship {lib}.",
        ]
    elif kind == "idor":
        sym = [
            f"A bug bounty researcher reports that changing the id in {c['endpoint']} on {n} returns other customers' data.",
            "We reproduced it with two test accounts.",
            "Logs show no sequential-id access patterns that would suggest abuse.",
        ]
        impact = (
            "Any logged-in user could read other customers' records; there is no evidence it has been abused."
        )
        fix = f"Add an ownership check to {c['endpoint']} on {n} and ship it as a hotfix."
        summary = f"{n} has a confirmed IDOR in {c['endpoint']} that exposes other customers' data, with no evidence of abuse."
        rest = [
            f"Scan {n} access logs for id enumeration to confirm no abuse.",
            "Reply to the researcher and track the report through the bounty process.",
        ]
    else:
        sym = [
            f"The internal debug endpoint of {n} (/internal/debug) is reachable from the internet without auth since the ingress change {c['chg']}.",
            "It can dump environment variables, including database credentials.",
            "The ingress logs show no external hits on that path.",
        ]
        impact = "Secrets are one unauthenticated request away from the internet, though nobody seems to have found it yet."
        fix = f"Block /internal/debug on the {n} ingress (revert {c['chg']}) right away."
        summary = f"{n} exposes an unauthenticated debug endpoint with database credentials to the internet since {c['chg']}, not yet exploited."
        rest = [
            f"Rotate the {n} database credentials as a precaution.",
            "Review ingress logs for any external hits on the path since the change.",
        ]
    return dict(
        title={
            "bucket": f"public bucket used by {n}",
            "cve": f"critical CVE in {n}",
            "idor": f"IDOR report on {n}",
            "endpoint": f"{n} debug endpoint exposed",
        }[kind],
        alert={
            "bucket": "CSPMPublicBucket",
            "cve": "VulnScanCritical",
            "idor": "BugBountyReport",
            "endpoint": "PublicExposure",
        }[kind],
        symptoms=sym,
        impact=impact,
        cust=None,
        metrics=[("external_hits", "0", "0"), ("finding_severity", "critical", "high")],
        cause=None,
        tried=_sample(
            r, ["verified the finding", "checked access logs", "told the owning team"], r.randint(1, 2)
        ),
        workaround=None,
        ask=f"Needs a fix today, who from {c['team']} can own it?",
        summary=summary,
        steps=_steps(
            r,
            [fix],
            rest + [f"Open a SEV2 security incident and assign an owner on {c['team']}."],
            3,
            4,
        ),
    )


def security_3(r, c):
    n = c["n"]
    kind = r.choice(["phish", "dep", "laptop"] + (["xss"] if c["tier"] == "internal" else []))
    if kind == "xss":
        sym = [
            f"Stored XSS in a notes field of {n}, which is only reachable over the VPN.",
            "It needs an authenticated employee to plant the payload.",
        ]
        impact = "Internal tool only and requires an insider; low risk."
        fix = f"Escape the notes field in {n} and add a content security policy."
        summary = f"{n}, an internal VPN-only tool, has a stored XSS in its notes field that requires an authenticated employee."
    elif kind == "phish":
        k = r.randint(3, 14)
        sym = [
            f"{k} employees reported a phishing email pretending to be the {n} login page.",
            "One person clicked the link but did not enter credentials; the domain is already blocked by the proxy.",
        ]
        impact = "No credentials were entered and the link is blocked; limited to a handful of staff."
        fix = f"Purge the phishing email from all mailboxes and add the sender domain to the block list (it spoofs {n})."
        summary = f"A phishing email spoofing the {n} login reached employees; one clicked but entered no credentials and the link is blocked."
    elif kind == "dep":
        cve = f"CVE-{r.choice([2023, 2024, 2025])}-{r.randint(10000, 59999)}"
        sym = [
            f"The dependency scanner flags {cve} (medium, CVSS 5.3) in a library {n} uses.",
            f"{n} is only reachable from the corporate network.",
        ]
        impact = "Low risk: internal-only exposure; it needs a patch within the normal 30-day window."
        fix = f"Upgrade the flagged library in {n} to the patched version this sprint."
        summary = f"The scanner flags medium {cve} in a library used by {n}, which is reachable only from the corporate network."
    else:
        sym = [
            f"An engineer on {c['team']} lost a laptop with access to {n}.",
            "The disk is encrypted and the laptop was locked; remote wipe is queued.",
        ]
        impact = "Low risk: full-disk encryption was on and no suspicious logins have been seen."
        fix = f"Revoke the engineer's {n} sessions, SSH keys and tokens and confirm the remote wipe."
        summary = f"A lost, encrypted laptop with access to {n} needs its sessions and keys revoked; no suspicious activity seen."
    return dict(
        title={
            "xss": f"XSS in {n}",
            "phish": f"phishing email spoofing {n}",
            "dep": f"scanner finding in {n}",
            "laptop": f"lost laptop with {n} access",
        }[kind],
        alert={
            "xss": "AppSecFinding",
            "phish": "PhishReport",
            "dep": "DependencyScan",
            "laptop": "AssetLost",
        }[kind],
        symptoms=sym,
        impact=impact,
        cust=None,
        metrics=[("finding_severity", "medium", "high")],
        cause=None,
        tried=_sample(r, ["confirmed the details", "checked sign-in logs (nothing odd)"], 1),
        workaround=None,
        ask="Not urgent, but please track it.",
        summary=summary,
        steps=_steps(
            r,
            [fix],
            [
                f"Open a SEV3 security ticket for {c['team']} with a fix date this sprint.",
                f"Check the {n} sign-in and audit logs for anything unusual to confirm there was no impact.",
            ],
            2,
            3,
        ),
    )


def security_4(r, c):
    n = c["n"]
    kind = r.choice(["fp", "pentest", "scan"])
    if kind == "fp":
        sym = [
            f"The secret scanner flagged a string in the {n} repo as an API key.",
            "It is the test fixture value fake_key_for_unit_tests_only and has never been valid.",
        ]
        summary = f"The secret-scanner alert on the {n} repo is a false positive on a test fixture, with no real key exposed."
        fix = f"Add the {n} test fixture to the secret scanner allowlist and close the alert."
    elif kind == "pentest":
        sym = [
            f"Reminder: the external pentest of {n} starts on {c['date']}.",
            "Expect WAF alerts from the testers' IP range.",
        ]
        summary = f"An informational notice that an external pentest of {n} starts on {c['date']}, with expected WAF noise."
        fix = f"Add the pentest IP range to the {n} WAF alert suppression list for the test window."
    else:
        sym = [
            f"IDS shows a port scan against {n} from a known security research scanner.",
            "Every probe was blocked at the firewall.",
        ]
        summary = f"A port scan against {n} from a known research scanner was fully blocked, with no impact."
        fix = f"Close the IDS alert for {n} and tag the scanner's range as known-benign."
    return dict(
        title={
            "fp": f"secret scanner hit in {n} repo",
            "pentest": f"pentest of {n} scheduled",
            "scan": f"port scan against {n}",
        }[kind],
        alert={"fp": "SecretScanHit", "pentest": "SecurityNotice", "scan": "IDSPortScan"}[kind],
        symptoms=sym,
        impact="No impact: nothing was exposed and no action is needed from users.",
        cust=None,
        metrics=[("blocked_requests", str(r.randint(50, 5000)), "")],
        cause=None,
        tried=["double-checked with the security team"],
        workaround=None,
        ask="Informational, no action needed from on-call.",
        summary=summary,
        steps=_steps(r, [fix], ["Resolve it as SEV4 informational and note it in the security log."], 2, 2),
    )


def data_1(r, c):
    n = c["n"]
    money = ("ledger-writer", "transfer-service", "billing-api", "payment-gateway", "subscription-manager")
    charging = (
        "checkout-api",
        "payment-gateway",
        "billing-api",
        "subscription-manager",
        "order-service",
        "booking-engine",
    )
    kind = r.choice(
        ["migration", "retention"]
        + (["double"] if n in money else [])
        + (["charges", "charges"] if n in charging else [])
    )
    k = r.choice([1800, 7400, 23000, 61000, 140000])
    if kind == "migration":
        sym = [
            f"Migration {r.randint(100, 999)} on the {n} database ran at {c['time']} and dropped a column instead of renaming it.",
            f"About {k:,} customer records lost their address data.",
            f"The latest backup is from {r.randint(9, 23)} hours ago.",
        ]
        fix = f"Stop writes to the affected {n} table and restore the dropped column from the latest backup plus binlogs."
        summary = f"A {n} migration at {c['time']} dropped a column and lost address data for about {k:,} customer records."
    elif kind == "double":
        sym = [
            f"{n} has been writing every transaction twice since {c['ver']} at {c['time']}.",
            f"About {k:,} accounts now show wrong balances.",
        ]
        fix = f"Roll {n} back to {c['prev']} to stop the double writes, then reverse the duplicate entries."
        summary = f"{n} has double-written transactions since {c['ver']} at {c['time']}, corrupting balances on about {k:,} accounts."
    elif kind == "retention":
        sym = [
            f"The retention job for {n} deleted active customer records instead of expired ones at {c['time']}.",
            f"{k:,} records are gone and soft-delete is not enabled on that table.",
        ]
        fix = f"Disable the {n} retention job now and restore the deleted records from the latest backup."
        summary = f"A {n} retention job deleted about {k:,} active customer records at {c['time']}, a data-loss incident."
    else:
        sym = [
            f"{n} charged customers twice for the same order since {c['time']}.",
            f"{k:,} duplicate charges so far, total ${k * r.randint(18, 90):,}.",
        ]
        fix = f"Stop the {n} retry path that creates duplicate charges (roll back {c['ver']})."
        summary = (
            f"{n} has been double-charging customers since {c['time']}, with {k:,} duplicate charges so far."
        )
    return dict(
        title=f"data loss/corruption in {n}",
        alert=r.choice(["ReconciliationMismatch", "RowCountDrop", "DataIntegrityCheck"]),
        symptoms=sym,
        impact=f"Customer data is lost or wrong for about {k:,} customers and it is ongoing.",
        cust="our account shows wrong data and some of our records are just gone",
        metrics=[("integrity_check_failures", f"{k}", "0"), ("rows_affected", f"{k}", "0")],
        cause=r.choice([f"Likely the {c['ver']} change.", "Not confirmed yet.", None]),
        tried=_sample(
            r,
            [
                "paused the downstream sync",
                "took a snapshot of the current state",
                "counted the affected rows",
            ],
            r.randint(1, 2),
        ),
        workaround=None,
        ask="Need the data owners and someone with database access right now.",
        summary=summary,
        steps=_steps(
            r,
            [fix],
            [
                f"Declare a SEV1 and page {c['team']} plus the database on-call.",
                "Build the exact list of affected customers for remediation and support.",
                "Prepare customer communication with support and legal.",
            ],
            3,
            4,
        ),
    )


def data_2(r, c):
    n = c["n"]
    pct = r.choice([9, 14, 20, 26, 31, 38])
    kinds = [
        kind
        for kind, names in (
            ("currency", ("pricing-engine", "catalog-service", "shipping-quotes")),
            (
                "stale",
                (
                    "search-indexer",
                    "search-api",
                    "recommendations-svc",
                    "reviews-service",
                    "catalog-service",
                    "help-center-web",
                    "loyalty-points",
                ),
            ),
            ("locale", ("notification-dispatcher", "email-sender", "sms-relay", "help-center-web")),
            ("stock", ("inventory-sync", "catalog-service")),
        )
        if n in names
    ]
    kind = r.choice(kinds or ["stale"])
    if kind == "currency":
        sym = [
            f"{n} shows EUR storefront prices in USD amounts since {c['time']}.",
            f"About {pct}% of product pages are affected.",
        ]
        fix = f"Roll back the {n} currency mapping change and purge cached prices."
        summary = f"{n} shows wrong-currency prices on about {pct}% of product pages since {c['time']}."
    elif kind == "stale":
        h = r.randint(6, 30)
        sym = [
            f"{n} has not picked up any changes for {h} hours.",
            f"About {pct}% of lookups return stale or missing items.",
        ]
        fix = f"Restart the stuck {n} consumer and backfill the last {h} hours of changes."
        summary = (
            f"{n} data is {h} hours stale, so about {pct}% of requests return outdated or missing items."
        )
    elif kind == "locale":
        sym = [
            f"{n} is sending messages in the wrong language since {c['time']}.",
            f"Roughly {pct}% of recipients got German instead of their locale.",
        ]
        fix = f"Fix the locale lookup in {n} (likely the {c['ver']} change) and roll back if needed."
        summary = f"{n} has sent wrong-language messages to about {pct}% of recipients since {c['time']}."
    else:
        sym = [
            f"{n} marks out-of-stock items as available since {c['time']}.",
            f"Around {pct}% of today's orders include items we cannot ship.",
        ]
        fix = f"Pause {n} and force a full stock resync from the warehouse system."
        summary = f"{n} shows out-of-stock items as available since {c['time']}, and about {pct}% of orders cannot be fulfilled."
    return dict(
        title=f"wrong data shown to customers by {n}",
        alert=r.choice(["DataFreshnessSLO", "ConsistencyCheckFailed", "AnomalyDetected"]),
        symptoms=sym,
        impact=f"Many customers (about {pct}%) are seeing wrong data; no data is lost.",
        cust="the information your site shows us is clearly wrong",
        metrics=[
            ("mismatch_ratio", f"{pct / 100:.2f}", "0.01"),
            ("lag_minutes", str(r.randint(30, 1800)), "15"),
        ],
        cause=r.choice(
            [f"Started with {c['ver']}.", f"Possibly a schema change upstream ({c['chg']}).", None]
        ),
        tried=_sample(
            r,
            [f"re-ran one {n} batch manually", "checked the upstream feed", "sampled affected records"],
            r.randint(1, 2),
        ),
        workaround=None,
        ask=f"Can {c['team']} own this?",
        summary=summary,
        steps=_steps(
            r,
            [fix],
            [
                f"Open a SEV2 for {n} with {c['team']} as owner.",
                "Tell support which customers are affected so they can answer tickets.",
                f"Add a consistency check on {n} output to catch this earlier.",
            ],
        ),
    )


def data_3(r, c):
    n = c["n"]
    kind = r.choice(["late", "double", "nulls"])
    if kind == "late":
        h = r.randint(3, 11)
        sym = [
            f"{n} finished {h} hours late today.",
            "The revenue dashboard still shows yesterday's numbers.",
        ]
        wk = "analysts can query the raw tables directly"
        fix = f"Re-run the failed {n} step and confirm the dashboard refreshes."
        summary = f"{n} is {h} hours late, so internal dashboards are stale, with raw tables available as a workaround."
    elif kind == "double":
        pct = r.randint(3, 12)
        sym = [
            f"{n} double counts some events in the internal weekly report.",
            f"Totals are about {pct}% too high.",
        ]
        wk = "the per-day tables are correct"
        fix = f"Deduplicate the {n} output on event id and rerun the weekly aggregation."
        summary = f"{n} over-counts events by about {pct}% in an internal report, while per-day tables remain correct."
    else:
        pct = r.choice([1, 2, 3])
        sym = [
            f"{n} has null values in about {pct}% of rows for one column.",
            "Only a non-critical experiment model reads it.",
        ]
        wk = "the model falls back to defaults"
        fix = f"Backfill the null column in {n} and add a not-null check."
        summary = f"{n} has nulls in about {pct}% of rows for one column read only by a non-critical model."
    return dict(
        title=f"{n} data issue (internal)",
        alert=r.choice(["JobLate", "DataQualityCheck", "FreshnessWarning"]),
        symptoms=sym,
        impact=f"Internal only, no customer impact; {wk}.",
        cust=None,
        metrics=[
            ("job_delay_minutes", str(r.randint(90, 700)), "60"),
            ("dq_checks_failed", str(r.randint(1, 4)), "0"),
        ],
        cause=r.choice(
            [f"The upstream {c['other']} export arrived late.", "A schema change last week.", None]
        ),
        tried=_sample(r, ["re-ran the job once", "checked the source data"], 1),
        workaround=f"Workaround: {wk}.",
        ask="Fix during working hours is fine.",
        summary=summary,
        steps=_steps(
            r,
            [fix],
            [
                f"Tell the {c['noun']} relying on {n} about the workaround.",
                f"Open a SEV3 ticket for {c['team']} to find why {n} broke.",
            ],
            2,
            3,
        ),
    )


def data_4(r, c):
    n = c["n"]
    kind = r.choice(["header", "tzlabel", "staging"])
    if kind == "header":
        sym = [
            f"The CSV export from {n} has a typo in a column header ('recieved_at').",
            "The values are correct.",
        ]
        fix = f"Fix the column header typo in the {n} export in the next release."
        summary = f"The {n} CSV export has a cosmetic header typo, with correct values and no impact."
    elif kind == "tzlabel":
        sym = [
            f"An internal chart fed by {n} labels its axis UTC but shows {c['tz'][0]} times.",
            "Numbers are correct.",
        ]
        fix = f"Correct the axis label on the chart fed by {n}."
        summary = (
            f"An internal chart fed by {n} has a wrong timezone label, a cosmetic issue with correct data."
        )
    else:
        sym = [
            f"Row counts for {n} in staging differ from prod by {r.randint(2, 9)} rows.",
            "Those rows are known test fixtures.",
        ]
        fix = f"Exclude the known test fixtures from the {n} staging row-count check."
        summary = f"The {n} staging row-count mismatch is caused by known test fixtures and has no impact."
    return dict(
        title={
            "header": f"typo in {n} CSV export",
            "tzlabel": f"wrong timezone label on {n} chart",
            "staging": f"{n} staging row counts off",
        }[kind],
        alert=r.choice(["DQCheckWarn", "LowPriorityTicket"]),
        symptoms=sym,
        impact="No user impact; purely cosmetic.",
        cust=None,
        metrics=[("dq_warnings", "1", "0")],
        cause=None,
        tried=["confirmed the underlying data is correct"],
        workaround=None,
        ask="Whenever someone has time.",
        summary=summary,
        steps=_steps(r, [fix], [f"Track it as a SEV4 backlog ticket for {c['team']}."], 2, 2),
    )


def perf_1(r, c):
    n = c["n"]
    p99 = r.choice([18, 25, 30, 42, 60])
    to = r.choice([70, 78, 85, 92])
    cause, fix = r.choice(
        [
            (
                f"The database CPU for {n} is pinned at 100% by a few long-running queries.",
                f"Kill the long-running queries saturating the {n} database and add read capacity.",
            ),
            (
                f"{c['ver']} added a new query on the hot path.",
                f"Roll {n} back from {c['ver']} to {c['prev']} and watch p99 latency recover.",
            ),
            (
                None,
                f"Find what saturates {n} (database, thread pools, a dependency) and shed load until it recovers.",
            ),
        ]
    )
    return dict(
        title=f"{n} timing out",
        alert=r.choice(["LatencySLOCritical", "TimeoutsHigh", "P99Breach"]),
        symptoms=[
            f"{n} p99 latency went from about 300 ms to {p99} s at {c['time']}.",
            f"{to}% of {c['endpoint']} requests hit the client timeout.",
        ],
        impact=f"Effectively down: {to}% of {c['noun']} cannot {c['action']} because requests time out.",
        cust=f"the page spins forever when we try to {c['action']}",
        metrics=[("p99_latency_s", str(p99), "1.5"), ("timeout_ratio", f"{to / 100:.2f}", "0.01")],
        cause=cause,
        tried=_sample(r, [f"scaled {n} out", "restarted the connection pooler"], r.randint(1, 2)),
        workaround=None,
        ask="All hands please.",
        summary=f"{n} requests are timing out ({to}%, p99 {p99} s) since {c['time']}, so most {c['noun']} cannot {c['action']}.",
        steps=_steps(
            r,
            [fix],
            [
                f"Declare a SEV1 and page {c['team']} and the database on-call.",
                f"Post a status page update about {c['action']} failing.",
            ],
            3,
            3,
        ),
    )


def perf_2(r, c):
    n = c["n"]
    before = r.choice([120, 180, 250, 320, 400])
    after = r.choice([2.5, 3.8, 4.5, 6.0, 9.0])
    pct = r.choice([10, 18, 25, 35, 50])
    scope = r.choice([f"in {c['region']}", "for logged-in users", "for large requests", "across all regions"])
    cause, fix = r.choice(
        [
            (
                f"Cache hit rate for {n} dropped from 94% to {r.randint(20, 60)}% at the same time.",
                f"Find why the {n} cache hit rate dropped (evictions, a flushed cluster, a key change) and warm it back up.",
            ),
            (
                f"{c['ver']} shipped at {c['at'](-3)}.",
                f"Roll {n} back from {c['ver']} to {c['prev']} and check that p95 recovers.",
            ),
            (
                "Possibly a noisy neighbour on the shared database; its CPU is at 95%.",
                f"Find the heavy queries on the database shared with {n} and throttle or move them.",
            ),
        ]
    )
    return dict(
        title=f"{n} slow {scope}",
        alert=r.choice(["LatencyHigh", "P95Regression", "ApdexLow"]),
        symptoms=[
            f"{n} p95 went from {before} ms to {after} s {scope} since {c['time']}.",
            r.choice(
                [
                    f"About {pct}% of requests take longer than 3 seconds.",
                    f"{pct}% of sessions abandon before the page loads.",
                ]
            ),
        ],
        impact=f"Major slowdown for about {pct}% of {c['noun']}; requests still succeed, just slowly.",
        cust=f"it takes ages to {c['action']}, sometimes half a minute",
        metrics=[
            ("p95_latency_ms", str(int(after * 1000)), str(before * 3)),
            ("slow_request_ratio", f"{pct / 100:.2f}", "0.05"),
        ],
        cause=cause,
        tried=_sample(
            r, ["checked GC pauses", f"scaled {n} up", "compared with yesterday's traffic"], r.randint(1, 2)
        ),
        workaround=None,
        ask=f"{c['team']} please look.",
        summary=f"{n} latency rose from {before} ms to {after} s {scope} since {c['time']}, slowing about {pct}% of {c['noun']}.",
        steps=_steps(
            r,
            [fix],
            [
                f"Open a SEV2 for {n} and assign {c['team']}.",
                f"Add capacity to {n} while the root cause is found.",
                "Keep the latency alert open until p95 is back under target.",
            ],
        ),
    )


def perf_3(r, c):
    n = c["n"]
    pct = r.choice([12, 15, 20, 25, 30])
    return dict(
        title=f"{n} slightly slower",
        alert=r.choice(["LatencyWarning", "SlowBatchJob", "P95Drift"]),
        symptoms=[
            f"{n} p95 is up {pct}% since {c['ver']}.",
            "It is still within the SLO.",
        ],
        impact="Minor degradation: pages are a bit slower for everyone but still within SLO, and nobody has complained.",
        cust=None,
        metrics=[
            ("p95_latency_ms", str(r.randint(180, 600)), str(r.randint(700, 1000))),
            ("delta_pct", str(pct), "10"),
        ],
        cause=f"Probably the extra serialization added in {c['ver']}.",
        tried=["compared flame graphs before and after"],
        workaround=None,
        ask="Can go in the backlog.",
        summary=f"{n} p95 latency is up about {pct}% since {c['ver']} but still within its SLO.",
        steps=_steps(
            r,
            [f"Profile {n} {c['ver']} against {c['prev']} and fix the slower code path."],
            [
                f"File a SEV3 ticket for {c['team']}.",
                f"Tune the {n} latency alert so a within-SLO drift does not page.",
            ],
            2,
            3,
        ),
    )


def perf_4(r, c):
    n = c["n"]
    where, follow = r.choice(
        [
            (
                "the CI benchmark job",
                f"Route {n} CI benchmark alerts to the team channel instead of the pager.",
            ),
            (
                "the load-test environment",
                f"Exclude the load-test environment from the {n} production latency alert.",
            ),
            (
                "a 40-second blip during the planned failover",
                f"Add a maintenance silence for {n} latency alerts during planned failovers.",
            ),
        ]
    )
    return dict(
        title=f"{n} latency blip",
        alert=r.choice(["BenchRegression", "LatencySpikeShort", "LoadTestAlert"]),
        symptoms=[
            f"A latency alert for {n} came from {where}.",
            "Production dashboards are flat and normal.",
        ],
        impact="No production or user impact.",
        cust=None,
        metrics=[
            ("bench_ns_per_op", str(r.randint(900, 4000)), str(r.randint(800, 900))),
            ("prod_p95_ms", str(r.randint(90, 200)), "500"),
        ],
        cause=None,
        tried=["checked prod dashboards"],
        workaround=None,
        ask="FYI only.",
        summary=f"The {n} latency alert came from {where} and production is unaffected.",
        steps=_steps(
            r,
            [f"Resolve the {n} alert as non-impacting and note it on the on-call log."],
            [follow],
            2,
            2,
        ),
    )


def page_1(r, c):
    n = c["n"]
    probes = r.choice([5, 6, 8, 12])
    return dict(
        title=f"synthetic {c['action']} probe failing everywhere",
        alert=r.choice(["SyntheticCheckFailed", "BlackboxProbeDown", "CanaryUserJourneyFailed"]),
        symptoms=[
            f"The synthetic '{c['action']}' journey for {n} fails from all {probes} probe locations since {c['time']}.",
            f"On-call ({c['who']}) confirmed by hand: {n} returns 500 on {c['endpoint']}.",
        ],
        impact=f"Confirmed real: {c['noun']} cannot {c['action']} anywhere.",
        cust=f"we cannot {c['action']}, at all",
        metrics=[("probe_success", f"0/{probes}", f"{probes}/{probes}"), ("http_5xx_ratio", "0.99", "0.05")],
        cause=r.choice([f"{c['ver']} deployed at {c['at'](-5)}.", "Unknown."]),
        tried=_sample(r, ["reproduced it by hand", f"checked {n} logs"], r.randint(1, 2)),
        workaround=None,
        ask="Escalating.",
        summary=f"{n} is down for all {c['noun']} since {c['time']}, confirmed by all {probes} synthetic probes and by hand.",
        steps=_steps(
            r,
            [
                f"Roll back {n} to {c['prev']} and rerun the synthetic journey.",
                f"Check {n} logs for the 500s and roll back the latest change.",
            ],
            [f"Declare a SEV1 and page {c['team']}.", "Post a status page update."],
            2,
            3,
        ),
    )


def page_2(r, c):
    n = c["n"]
    depth = r.choice([180_000, 650_000, 1_200_000, 2_300_000])
    delay = r.choice([25, 40, 55, 75, 110])
    return dict(
        title=f"{n} queue backlog",
        alert=r.choice(["QueueDepthHigh", "ConsumerLagHigh", "BacklogGrowing"]),
        symptoms=[
            f"The {n} queue is at {depth:,} messages and still growing.",
            f"Messages are delayed about {delay} minutes.",
        ],
        impact=f"All {c['noun']} see delays of about {delay} minutes; nothing is lost but it is getting worse every minute.",
        cust="what we expect to get takes close to an hour to show up",
        metrics=[
            ("queue_depth", f"{depth}", "10000"),
            ("consumer_lag_s", str(delay * 60), "300"),
            ("consumers_healthy", f"{r.randint(1, 3)}/{r.randint(8, 16)}", ""),
        ],
        cause=r.choice(
            ["Most consumers are stuck on one poison message.", f"Consumers crash since {c['ver']}.", None]
        ),
        tried=_sample(
            r, ["restarted consumers", "checked the broker", "looked for poison messages"], r.randint(1, 2)
        ),
        workaround=None,
        ask="Need help draining this.",
        summary=f"The {n} queue has backed up to {depth:,} messages, delaying delivery for all {c['noun']} by about {delay} minutes.",
        steps=_steps(
            r,
            [
                f"Move the poison message to the dead-letter queue and restart the {n} consumers.",
                f"Scale out the {n} consumers and roll back {c['ver']} if they crash.",
            ],
            [
                f"Open a SEV2 for {n} and page {c['team']}.",
                "Watch the queue depth until it drains under 10,000.",
                "Post a notice that deliveries are delayed.",
            ],
        ),
    )


def page_3(r, c):
    n = c["n"]
    kind = r.choice(["disk", "cron", "pod"])
    if kind == "disk":
        pct = r.choice([82, 85, 88])
        sym = [f"Disk on one {n} replica is at {pct}%.", "It grows about 2% a day."]
        fix = f"Clean up old logs on the {n} replica and resize the volume."
        impact = "No user impact yet; at this rate the disk is full in about a week."
        metrics = [("disk_used_pct", str(pct), "80"), ("disk_growth_pct_per_day", "2", "")]
        summary = f"One {n} replica is at {pct}% disk and growing slowly, with no user impact yet."
    elif kind == "cron":
        sym = [
            f"The {n} nightly cron failed at {c['time']}.",
            f"A manual re-run only got halfway, so a few {c['noun']} have an incomplete daily result.",
        ]
        fix = f"Find why the {n} cron failed (logs at {c['time']}), finish the re-run and add a retry."
        impact = f"Minor: a few {c['noun']} have incomplete results; everyone else is fine."
        metrics = [("cron_exit_code", "1", "0"), ("rows_processed_pct", str(r.randint(40, 60)), "100")]
        summary = f"The {n} nightly cron failed at {c['time']} and a partial re-run left a few {c['noun']} with incomplete results."
    else:
        sym = [
            f"One of {c['pods']} {n} pods is crashlooping with OOMKilled.",
            "The others carry the load; about 0.2% of requests failed each time it died.",
        ]
        fix = f"Raise the memory limit of the {n} pods and look for a leak."
        impact = "Minor: a tiny share of requests failed briefly and capacity is fine."
        metrics = [
            ("restarts_1h", str(r.randint(4, 20)), "3"),
            ("ready_pods", f"{c['pods'] - 1}/{c['pods']}", ""),
        ]
        summary = (
            f"One of {c['pods']} {n} pods is crashlooping on out-of-memory while the rest handle the load."
        )
    return dict(
        title={
            "disk": f"disk filling on a {n} replica",
            "cron": f"{n} nightly cron failed",
            "pod": f"{n} pod crashlooping",
        }[kind],
        alert={"disk": "DiskUsageWarning", "cron": "CronJobFailed", "pod": "PodCrashLooping"}[kind],
        symptoms=sym,
        impact=impact,
        cust=None,
        metrics=metrics,
        cause=None,
        tried=["checked the other replicas", "re-ran it manually"][: r.randint(1, 2)],
        workaround=None,
        ask="Can wait until business hours.",
        summary=summary,
        steps=_steps(
            r,
            [fix],
            [f"Open a SEV3 ticket for {c['team']}.", f"Tune the {n} alert threshold if this repeats."],
            2,
            3,
        ),
    )


def page_4(r, c):
    n = c["n"]
    kind = r.choice(["agent", "probe", "threshold"])
    if kind == "agent":
        sym = [
            f"NoData alert for {n} at {c['time']}.",
            "The monitoring agent was restarting during a routine upgrade.",
        ]
        fix = "Silence NoData alerts during monitoring agent upgrades."
        summary = (
            f"The {n} NoData page at {c['time']} was a false positive caused by a monitoring agent restart."
        )
    elif kind == "probe":
        sym = [
            f"Uptime alert for {n} from the {c['other']} probe.",
            "That probe location was decommissioned last week.",
        ]
        fix = f"Remove the decommissioned {c['other']} probe from the {n} uptime check."
        summary = f"The {n} uptime page came from a decommissioned {c['other']} probe, a false positive."
    else:
        sym = [
            f"Error-rate alert for {n} fired at 0.3%.",
            "The threshold was set to 0.2% by mistake; normal is 0.3%.",
        ]
        fix = f"Set the {n} error-rate alert threshold back to its intended value."
        summary = f"The {n} error-rate page was a false positive from a misconfigured threshold."
    return dict(
        title={
            "agent": f"NoData for {n}",
            "probe": f"{n} uptime check failing",
            "threshold": f"{n} error rate above threshold",
        }[kind],
        alert={"agent": "NoData", "probe": "UptimeCheckFailed", "threshold": "ErrorRateAboveThreshold"}[kind],
        symptoms=sym + [f"{n} is healthy; nothing else alerted."],
        impact="False positive, no user impact.",
        cust=None,
        metrics=[("probe_success", "1", "1"), ("http_5xx_ratio", "0.003", "0.05")],
        cause=None,
        tried=[f"checked {n} dashboards"],
        workaround=None,
        ask="Resolving.",
        summary=summary,
        steps=_steps(r, [fix], ["Resolve the page and log it as a false positive."], 2, 2),
    )


def cost_3(r, c):
    n = c["n"]
    kind = r.choice(["gpu", "logs", "egress", "autoscale"])
    burn = r.choice([180, 450, 900, 1600])
    if kind == "gpu":
        sym = [f"{r.choice([8, 16, 32])} GPUs from {n} have been running idle since {c['weekday']}."]
        fix = f"Shut down the idle {n} GPU nodes and add an idle-timeout to the job."
    elif kind == "logs":
        sym = [f"{n} debug logging was left on after {c['ver']}; log ingestion is up 5x."]
        fix = f"Turn debug logging off in {n} and add a log volume budget alert."
    elif kind == "egress":
        sym = [f"Cross-region egress from {n} to {c['other']} jumped 8x."]
        fix = f"Find the {n} job pulling data cross-region and point it at the local replica."
    else:
        sym = [f"The {n} autoscaler is stuck at max nodes although load is low."]
        fix = f"Fix the {n} autoscaler metric and scale the node group back down."
    return dict(
        title=f"cost spike on {n}",
        alert=r.choice(["CostAnomaly", "BudgetThreshold", "SpendForecast"]),
        symptoms=sym + [f"This is costing about ${burn:,} per hour."],
        impact="No user impact, but money is being burned until someone acts.",
        cust=None,
        metrics=[
            ("hourly_spend_usd", str(burn), str(burn // 5)),
            ("forecast_month_usd", f"{burn * 24 * 30:,}", ""),
        ],
        cause=None,
        tried=["checked the billing console"],
        workaround=None,
        ask=f"Can {c['team']} look today?",
        summary=f"{n} is burning about ${burn:,} per hour in avoidable cloud spend, with no user impact.",
        steps=_steps(r, [fix], [f"Open a SEV3 for {c['team']}.", f"Add a cost anomaly alert for {n}."], 2, 3),
    )


def cost_4(r, c):
    n = c["n"]
    kind = r.choice(["forecast", "ri", "explained"])
    if kind == "forecast":
        pct = r.randint(4, 9)
        sym = [f"The {n} cost forecast is {pct}% over budget for the month."]
        summary = f"The {n} monthly cost forecast is {pct}% over budget, an informational notice."
        fix = f"Review the {n} cost breakdown at the next planning meeting."
    elif kind == "ri":
        sym = [f"Reserved capacity for {n} expires next quarter."]
        summary = f"Reserved capacity for {n} expires next quarter, an informational reminder."
        fix = f"Ask {c['team']} to decide on renewing the {n} reservation before next quarter."
    else:
        sym = [f"A cost anomaly on {n} was the planned load test."]
        summary = f"The {n} cost anomaly is explained by a planned load test and needs no action."
        fix = f"Close the {n} cost anomaly alert as expected."
    return dict(
        title=f"cost notice for {n}",
        alert=r.choice(["CostReport", "BudgetNotice"]),
        symptoms=sym,
        impact="Informational, no user impact.",
        cust=None,
        metrics=[("forecast_delta_pct", str(r.randint(2, 9)), "10")],
        cause=None,
        tried=[],
        workaround=None,
        ask="No action needed.",
        summary=summary,
        steps=_steps(r, [fix], ["Log it as a SEV4 informational note."], 2, 2),
    )


def cert_1(r, c):
    n = c["n"]
    host = r.choice(
        [f"{n.split('-')[0]}.example-shop.com", f"api.{n.split('-')[0]}.example.net", f"{n}.prod.example.io"]
    )
    why = r.choice(
        [
            "Auto-renewal has been failing silently for three weeks; the ACME DNS challenge points at a deleted zone.",
            "The certificate was bought manually two years ago and nobody had a reminder for it.",
            "Renewal succeeded but the new certificate was never rolled out to the load balancer.",
        ]
    )
    return dict(
        title=f"TLS certificate expired on {host}",
        alert=r.choice(["CertificateExpired", "TLSHandshakeFailures", "SSLCertInvalid"]),
        symptoms=[
            f"The TLS certificate for {host}, served by {n}, expired at {c['time']}.",
            r.choice(
                [
                    "Browsers show NET::ERR_CERT_DATE_INVALID and the mobile apps refuse to connect.",
                    "Every client gets a handshake failure; curl says 'certificate has expired'.",
                    "Partner integrations and our own apps all fail the TLS handshake.",
                ]
            ),
        ],
        impact=r.choice(
            [
                f"Full outage for clients: {c['noun']} cannot {c['action']} until a valid certificate is served.",
                f"Every request to {host} fails, so {c['noun']} cannot {c['action']} anywhere.",
            ]
        ),
        cust=f"we cannot {c['action']}, the browser shows a big certificate warning",
        metrics=[
            ("cert_days_left", "0", "14"),
            ("tls_handshake_fail_ratio", f"0.{r.randint(95, 99)}", "0.01"),
        ],
        cause=why,
        tried=_sample(
            r,
            [
                "checked the cert-manager logs",
                "confirmed the expiry date with openssl",
                "looked for the renewal ticket",
            ],
            r.randint(1, 2),
        ),
        workaround=None,
        ask="Need whoever owns certificates, urgently.",
        summary=f"The TLS certificate for {host} on {n} expired at {c['time']}, so {c['noun']} cannot {c['action']}.",
        steps=_steps(
            r,
            [f"Issue and deploy a valid certificate for {host} on the {n} load balancer right now."],
            [
                "Declare a SEV1 and post a status page update about the connection errors.",
                f"Fix the {n} auto-renewal and confirm the renewed certificate is actually deployed.",
                "Add an expiry alert at 21 and 7 days for every public certificate.",
            ],
            3,
            4,
        ),
    )


def cert_2(r, c):
    n = c["n"]
    pct = r.choice([9, 14, 18, 23, 31])
    kind = r.choice(["chain", "region", "partner"])
    if kind == "chain":
        sym = [
            f"After this morning's certificate renewal on {n}, the intermediate certificate is missing from the chain.",
            f"Older Android clients (about {pct}% of {c['noun']}) fail the TLS handshake; newer ones cache the intermediate and work.",
        ]
        fix = f"Redeploy the {n} certificate with the full intermediate chain and verify with an old Android client."
        summary = f"{n} serves an incomplete certificate chain since the renewal, so about {pct}% of {c['noun']} on older Android fail TLS."
        cause = r.choice(
            [
                "The renewal pipeline only uploads the leaf certificate.",
                "The new bundle was exported without the intermediate.",
                None,
            ]
        )
    elif kind == "region":
        sym = [
            f"The certificate on the {c['region']} endpoint of {n} expired at {c['time']}; the other regions were renewed.",
            f"{c['region']} carries about {pct}% of {c['noun']}.",
        ]
        fix = f"Deploy the renewed certificate to the {n} endpoint in {c['region']} or shift that traffic to {c['other']}."
        summary = f"The {n} certificate in {c['region']} expired at {c['time']}, cutting off about {pct}% of {c['noun']}."
        cause = r.choice([f"The {c['region']} endpoint was missed in the renewal rollout.", None])
    else:
        sym = [
            f"The mTLS client certificate {n} uses for partner webhooks expired at {c['time']}.",
            f"Webhook deliveries to partners fail; about {pct}% of {c['noun']} depend on them.",
        ]
        fix = f"Rotate the {n} partner mTLS client certificate and replay the failed webhooks."
        summary = f"The {n} partner mTLS certificate expired at {c['time']}, breaking webhook delivery for about {pct}% of {c['noun']}."
        cause = r.choice(["Client certificates are not covered by the renewal automation.", None])
    return dict(
        title=f"TLS errors on {n} for part of the traffic",
        alert=r.choice(["TLSChainIncomplete", "CertificateExpired", "WebhookDeliveryFailing"]),
        symptoms=sym,
        impact=f"About {pct}% of {c['noun']} cannot connect; everyone else is fine.",
        cust="the app suddenly says the connection is not secure",
        metrics=[
            ("tls_fail_ratio", f"{pct / 100:.2f}", "0.01"),
            ("cert_chain_len", r.choice(["1", "2"]), "3"),
        ],
        cause=cause,
        tried=_sample(
            r,
            [
                "tested with openssl s_client",
                "reproduced on an old test phone",
                "compared the served certificates across regions",
            ],
            r.randint(1, 2),
        ),
        workaround=None,
        ask="Please fix soon, support is getting tickets.",
        summary=summary,
        steps=_steps(
            r,
            [fix],
            [
                f"Open a SEV2 for {n} and page {c['team']}.",
                "Add a full-chain and per-region check to the renewal pipeline.",
            ],
            2,
            3,
        ),
    )


def cert_3(r, c):
    n = c["n"]
    d = r.choice([3, 4, 5, 6])
    why = r.choice(["the DNS challenge fails", "the ACME account key was rotated", "rate limits at the CA"])
    if c["tier"] == "internal" and r.random() < 0.5:
        sym = [
            f"The internal certificate for {n} expired at {c['time']}.",
            "Browsers warn, but staff can click through or use the CLI.",
        ]
        impact = f"Internal only: {c['noun']} see a warning and there is a workaround."
        summary = f"The internal certificate for {n} expired at {c['time']}, an internal-only problem with a workaround."
        fix = f"Reissue the internal certificate for {n} from the internal CA."
    else:
        sym = [
            f"The certificate for {n} expires in {d} days.",
            f"Auto-renewal has failed {r.randint(2, 6)} times because {why}.",
        ]
        impact = "No impact yet, but clients will break when it expires unless someone renews it."
        summary = f"The certificate for {n} expires in {d} days and auto-renewal is failing because {why}, with no impact yet."
        fix = f"Renew the {n} certificate manually and deploy it before it expires in {d} days."
    return dict(
        title=f"certificate problem on {n}",
        alert=r.choice(["CertificateExpiringSoon", "ACMERenewalFailed"])
        if "expires in" in summary
        else "InternalCertExpired",
        symptoms=sym,
        impact=impact,
        cust=None,
        metrics=[("cert_days_left", str(d), "14"), ("renewal_failures", str(r.randint(2, 6)), "0")],
        cause=None,
        tried=_sample(r, ["checked the issuer logs", "confirmed the expiry date with openssl"], 1),
        workaround=None,
        ask="Needs an owner this week.",
        summary=summary,
        steps=_steps(
            r,
            [fix],
            [
                f"Fix why renewal fails ({why}) so it does not recur.",
                f"Open a SEV3 for {c['team']} with a due date.",
            ],
            2,
            3,
        ),
    )


def cert_4(r, c):
    n = c["n"]
    d = r.choice([45, 52, 60, 75, 88])
    kind = r.choice(["reminder", "decom"])
    if kind == "reminder":
        sym = [
            f"Reminder: the certificate for {n} expires in {d} days.",
            "Auto-renewal is configured and last ran fine.",
        ]
        summary = f"The certificate for {n} expires in {d} days and auto-renewal is configured, an informational reminder."
        fix = f"Confirm the {n} certificate renews automatically about 30 days before expiry."
    else:
        sym = [
            f"An expired certificate was found on legacy-{n}.example.net.",
            "The hostname was decommissioned last year and gets zero traffic.",
        ]
        summary = (
            f"An expired certificate on the decommissioned legacy-{n} hostname has no traffic and no impact."
        )
        fix = f"Delete the legacy-{n} DNS record and drop it from the certificate inventory."
    return dict(
        title=f"certificate notice for {n}",
        alert=r.choice(["CertificateExpiryReminder", "CertInventoryScan"]),
        symptoms=sym,
        impact="Informational, no user impact.",
        cust=None,
        metrics=[("cert_days_left", str(d), "30")],
        cause=None,
        tried=[],
        workaround=None,
        ask="FYI, no action needed tonight.",
        summary=summary,
        steps=_steps(r, [fix], ["Close it as SEV4 informational."], 2, 2),
    )


def vendor_1(r, c):
    n, v, vk = c["n"], c["vendor"], c["vendor_kind"]
    code = r.choice(["HTTP 500", "HTTP 503", "connection timeouts", "'service unavailable'"])
    return dict(
        title=f"{v} outage is taking down {n}",
        alert=r.choice(["UpstreamDependencyDown", "VendorErrorRate", "ThirdPartyFailure"]),
        symptoms=[
            f"{v}, our {vk}, returns {code} for every call from {n} since {c['time']}.",
            r.choice(
                [
                    f"Their status page now says 'major outage' for {r.choice(['US', 'EU', 'all regions'])}.",
                    "Their status page is still green but their support confirmed a problem.",
                    f"Their API latency went to {r.randint(20, 60)} s before failing outright.",
                ]
            ),
        ],
        impact=(
            f"Revenue has stopped: {c['noun']} cannot {c['action']} while {v} is down."
            if n in REVENUE_SERVICES and r.random() < 0.6
            else f"{c['noun'].capitalize()} cannot {c['action']} at all; every request through {v} fails."
        ),
        cust=f"we cannot {c['action']}, nothing goes through",
        metrics=[
            ("vendor_error_ratio", "1.00", "0.05"),
            ("vendor_p99_ms", str(r.randint(20000, 60000)), "2000"),
        ],
        cause=f"Outage at {v}.",
        tried=_sample(
            r,
            [
                "checked the vendor status page",
                "opened a ticket with the vendor",
                f"restarted {n} (no change)",
            ],
            r.randint(1, 2),
        ),
        workaround=None,
        ask="Do we have a failover for this vendor?",
        summary=f"{v} ({vk}) is failing every call since {c['time']}, so {n} is down and {c['noun']} cannot {c['action']}.",
        steps=_steps(
            r,
            [
                f"Fail {n} over to the backup {vk} if one is configured, or switch on the degraded mode that queues requests."
            ],
            [
                "Declare a SEV1 and post a status page update naming the upstream provider issue.",
                f"Open a priority case with {v} and get an ETA.",
                f"Replay or reconcile the requests {n} failed during the outage once {v} recovers.",
            ],
            3,
            4,
        ),
    )


def vendor_2(r, c):
    n, v, vk = c["n"], c["vendor"], c["vendor_kind"]
    pct = r.choice([12, 15, 22, 30, 40])
    scope = r.choice(["for EU customers", "for one card network", "intermittently", f"in {c['region']}"])
    return dict(
        title=f"{v} degraded, {n} partially failing",
        alert=r.choice(["VendorLatencyHigh", "DependencyDegraded", "UpstreamErrorsElevated"]),
        symptoms=[
            f"Calls from {n} to {v} ({vk}) fail or take over 10 s {scope} since {c['time']}.",
            f"About {pct}% of those calls end in an error.",
        ],
        impact=f"About {pct}% of {c['noun']} cannot {c['action']} on the first try; retries help some of them.",
        cust=f"it only works sometimes when we try to {c['action']}",
        metrics=[
            ("vendor_error_ratio", f"{pct / 100:.2f}", "0.05"),
            ("vendor_p95_ms", str(r.randint(6000, 15000)), "1500"),
        ],
        cause=f"Degradation at {v}; their status page mentions elevated error rates.",
        tried=_sample(
            r,
            ["checked their status page", "raised the client timeout", "opened a vendor ticket"],
            r.randint(1, 2),
        ),
        workaround=None,
        ask="Should we switch providers for now?",
        summary=f"{v} is degraded {scope} since {c['time']}, so about {pct}% of {n} calls fail and {c['noun']} are affected.",
        steps=_steps(
            r,
            [f"Route the failing share of {n} traffic to the backup {vk} until {v} recovers."],
            [
                f"Open a SEV2 and a priority case with {v}.",
                f"Add retries with backoff in {n} for {v} calls.",
                "Tell support which customers are affected.",
            ],
            2,
            4,
        ),
    )


def vendor_3(r, c):
    n, v, vk = c["n"], c["vendor"], c["vendor_kind"]
    kind = r.choice(["fallback", "bounce", "saas"])
    if kind == "fallback":
        sym = [
            f"{v} ({vk}) is slow for {n}, p95 around {r.randint(2, 6)} s.",
            "The built-in fallback path takes over and users get results.",
        ]
        impact = "Minor: the fallback covers it, slightly less accurate results."
        summary = f"{v} is slow for {n} but its fallback keeps serving users, a minor degradation."
        fix = f"Keep {n} on the fallback and track {v}'s recovery."
    elif kind == "bounce":
        dom = r.choice(["a regional ISP", "one corporate mail domain", "a small university domain"])
        sym = [
            f"{v} reports a bounce spike from {n} mail to {dom}.",
            f"About {r.randint(40, 300)} recipients are affected.",
        ]
        impact = "Limited to one recipient domain; everyone else gets mail."
        summary = f"Mail from {n} via {v} bounces for {dom}, affecting a small number of recipients."
        fix = f"Ask {v} to check the {dom} blocklisting and resend the bounced {n} mail after it is cleared."
    else:
        sym = [
            f"{v} is down for the internal dashboard that {n} uses.",
            "Customers are not affected; staff can use the API directly.",
        ]
        impact = "Internal only, with a workaround."
        summary = f"{v} is down for an internal {n} dashboard, with no customer impact and an API workaround."
        fix = f"Point staff to the API workaround for {n} until {v} recovers."
    return dict(
        title={
            "fallback": f"{v} slow for {n}",
            "bounce": f"{n} mail bouncing",
            "saas": f"{v} down for {n} dashboard",
        }[kind],
        alert={"fallback": "VendorLatencyWarning", "bounce": "BounceRateHigh", "saas": "SaaSUnavailable"}[
            kind
        ],
        symptoms=sym,
        impact=impact,
        cust=None,
        metrics=[
            ("vendor_p95_ms", str(r.randint(1200, 4000)), "800"),
            ("fallback_ratio", f"0.{r.randint(10, 60)}", ""),
        ],
        cause=None,
        tried=_sample(r, ["checked the vendor status page", "verified the fallback"], 1),
        workaround="A workaround is in place.",
        ask="No rush.",
        summary=summary,
        steps=_steps(
            r,
            [fix],
            [
                "Open a SEV3 ticket and follow up with the vendor.",
                f"Review the {n} timeout settings for {v}.",
            ],
            2,
            3,
        ),
    )


def vendor_4(r, c):
    n, v, vk = c["n"], c["vendor"], c["vendor_kind"]
    kind = r.choice(["maint", "deprecation", "unrelated"])
    if kind == "maint":
        sym = [
            f"{v} ({vk}) announced planned maintenance on {c['date']} from 02:00 to 03:00 UTC.",
            f"It does not touch the endpoints {n} uses.",
        ]
        summary = f"{v} announced maintenance on {c['date']} that does not affect the endpoints {n} uses."
        fix = f"Note the {v} maintenance window in the {n} on-call calendar."
    elif kind == "deprecation":
        sym = [
            f"{v} will deprecate its v1 API in six months.",
            f"{n} already uses v2 except for one report export.",
        ]
        summary = f"{v} is deprecating its v1 API in six months, with only one {n} export still on v1 and no impact now."
        fix = f"Create a ticket to move the last {n} export to the {v} v2 API."
    else:
        sym = [
            f"{v} has an incident on its status page for a product {n} does not use.",
            f"{n} metrics look normal.",
        ]
        summary = f"A {v} incident concerns a product {n} does not use, with no impact."
        fix = f"Confirm {n} does not call the affected {v} product and close the alert."
    return dict(
        title=f"{v} notice",
        alert=r.choice(["VendorNotice", "StatusPageWatch"]),
        symptoms=sym,
        impact=f"No impact on {n} or its users.",
        cust=None,
        metrics=[],
        cause=None,
        tried=[],
        workaround=None,
        ask="FYI only.",
        summary=summary,
        steps=_steps(r, [fix], ["Log it as SEV4 informational, no paging needed."], 2, 2),
    )


def deploy_1(r, c):
    n = c["n"]
    why = r.choice(
        [
            "the rollback job fails because the old image was garbage-collected from the registry",
            "the migration in the release is not backwards compatible, so the old version crashes on start",
            "the deploy pipeline itself is stuck on a lock",
        ]
    )
    return dict(
        title=f"{n} {c['ver']} broke {c['action']}, rollback failing",
        alert=r.choice(["DeployErrorSpike", "PostDeployVerificationFailed", "SLOBurnRateCritical"]),
        symptoms=[
            f"{n} {c['ver']} went out at {c['time']} and {c['endpoint']} started returning 500 for every request.",
            f"We tried to roll back to {c['prev']}, but {why}.",
        ],
        impact=f"{c['noun'].capitalize()} cannot {c['action']} at all; error rate is {r.randint(92, 100)}%.",
        cust=f"nothing works since a few minutes, we cannot {c['action']}",
        metrics=[
            ("http_5xx_ratio", f"0.{r.randint(92, 99)}", "0.05"),
            ("deploy_status", "rollback_failed", ""),
        ],
        cause=r.choice(
            [
                f"The only change in that window is {c['ver']} of {n}.",
                f"It started the minute {c['ver']} finished rolling out.",
                f"The diff for {c['ver']} touches exactly this code path.",
            ]
        ),
        tried=_sample(
            r,
            ["started the rollback job", "paused the deploy pipeline", f"scaled {n} to zero and back"],
            r.randint(1, 2),
        ),
        workaround=None,
        ask="Need someone who knows the deploy tooling, right now.",
        summary=f"{n} {c['ver']} broke {c['endpoint']} for all {c['noun']} at {c['time']} and the rollback to {c['prev']} is failing.",
        steps=_steps(
            r,
            [
                f"Get {c['prev']} of {n} running by hand (re-push the old image or roll forward with a revert) since {why}.",
            ],
            [
                f"Declare a SEV1, page {c['team']} and the deploy tooling owners.",
                "Post a status page update.",
                "Freeze further deploys until the rollback path is fixed.",
            ],
            3,
            4,
        ),
    )


def deploy_2(r, c):
    n = c["n"]
    pct = r.choice([8, 12, 17, 24, 35])
    scope = r.choice(
        [
            "for Android app users",
            "in " + c["region"],
            "for users on the new onboarding flow",
            "for accounts created before 2021",
        ]
    )
    return dict(
        title=f"{n} {c['ver']} errors {scope}",
        alert=r.choice(["DeployErrorSpike", "ErrorBudgetBurn", "CanaryAnalysisFailed"]),
        symptoms=[
            f"After {n} {c['ver']} rolled out at {c['time']}, {pct}% of requests {scope} fail with a 500.",
            r.choice(
                [
                    "The stack trace points at a null field the new code does not expect.",
                    "It only affects one code path; the rest of the service is fine.",
                    "The canary did not catch it because canary traffic never hits that path.",
                ]
            ),
        ],
        impact=f"About {pct}% of {c['noun']} ({scope}) cannot {c['action']}.",
        cust=f"since this afternoon we get an error when we try to {c['action']}",
        metrics=[("http_5xx_ratio", f"{pct / 100:.2f}", "0.02"), ("deploy_version", c["ver"], "")],
        cause=r.choice(
            [
                f"The only change in that window is {c['ver']} of {n}.",
                f"It started the minute {c['ver']} finished rolling out.",
                f"The diff for {c['ver']} touches exactly this code path.",
            ]
        ),
        tried=_sample(
            r,
            ["started the rollback", "confirmed it reproduces", "disabled the new feature flag (no effect)"],
            r.randint(1, 2),
        ),
        workaround=None,
        ask="Rolling back, need someone to confirm recovery.",
        summary=f"{n} {c['ver']} has been failing about {pct}% of requests {scope} since {c['time']}.",
        steps=_steps(
            r,
            [
                f"Finish rolling {n} back to {c['prev']} and confirm the error rate {scope} returns to baseline."
            ],
            [
                f"Open a SEV2 for {n} with {c['team']} as owner.",
                f"Add a test for the failing path before re-releasing {c['ver']}.",
                "Make canary analysis cover that code path.",
            ],
            2,
            4,
        ),
    )


def deploy_3(r, c):
    n = c["n"]
    if c["tier"] == "internal":
        sym = [
            f"{n} {c['ver']} broke the export button for staff and was rolled back at {c['now']}.",
            "The export works again on the old version.",
        ]
        impact = "Internal only, a few staff were affected for under an hour."
        summary = (
            f"{n} {c['ver']} broke an internal export and was rolled back, affecting a few staff briefly."
        )
    else:
        e = r.choice([1.5, 2, 3])
        sym = [
            f"The canary of {n} {c['ver']} showed {e}% errors at {c['time']} and was rolled back automatically.",
            "Only canary traffic (5%) saw it, for about 10 minutes.",
        ]
        impact = "Small: a fraction of canary traffic saw errors briefly, now resolved."
        summary = f"The {n} {c['ver']} canary was auto-rolled back after {e}% errors on canary traffic, with limited impact."
    return dict(
        title=f"{n} {c['ver']} rolled back",
        alert=r.choice(["CanaryFailed", "AutoRollback", "DeployReverted"]),
        symptoms=sym,
        impact=impact,
        cust=None,
        metrics=[("canary_error_ratio", "0.02", "0.01"), ("rollback", "auto", "")],
        cause=None,
        tried=["confirmed the rollback finished"],
        workaround=None,
        ask="Please find the bug before the next release.",
        summary=summary,
        steps=_steps(
            r,
            [f"Find the bug in {n} {c['ver']} from the canary logs before re-deploying."],
            [f"Open a SEV3 for {c['team']}.", f"Hold further {n} deploys until the fix is tested."],
            2,
            3,
        ),
    )


def deploy_4(r, c):
    n = c["n"]
    kind = r.choice(["staging", "precaution"])
    if kind == "staging":
        sym = [
            f"Smoke tests failed for {n} {c['ver']} in staging and the pipeline rolled it back.",
            "It never reached production.",
        ]
        summary = (
            f"{n} {c['ver']} failed smoke tests in staging and was rolled back before reaching production."
        )
        fix = f"Fix the failing {n} smoke test or the code it caught before re-running the pipeline."
    else:
        sym = [
            f"We rolled {n} back from {c['ver']} to {c['prev']} as a precaution before the weekend.",
            "No errors were seen.",
        ]
        summary = f"{n} was rolled back from {c['ver']} as a precaution, with no errors and no impact."
        fix = f"Re-release {n} {c['ver']} on Monday with someone watching the dashboards."
    return dict(
        title=f"{n} {c['ver']} rolled back",
        alert=r.choice(["SmokeTestFailed", "DeployReverted"]),
        symptoms=sym,
        impact="No production or user impact.",
        cust=None,
        metrics=[("prod_error_ratio", "0.001", "0.02")],
        cause=None,
        tried=[],
        workaround=None,
        ask="FYI.",
        summary=summary,
        steps=_steps(r, [fix], ["Log it as SEV4, no incident needed."], 2, 2),
    )


def capacity_1(r, c):
    n = c["n"]
    kind = r.choice(["disk", "conn", "quota"])
    if kind == "disk":
        sym = [
            f"The {n} primary database volume hit 100% at {c['time']}.",
            "All INSERTs fail with 'no space left on device'.",
        ]
        fix = f"Expand the {n} database volume now and clear the WAL/archive backlog."
    elif kind == "conn":
        sym = [
            f"{n} has hit max_connections on its database since {c['time']}.",
            "Every new request fails with 'too many clients'.",
        ]
        fix = f"Kill idle {n} connections, lower the per-pod pool size and restart the pods in batches."
    else:
        sym = [
            f"{n} hit the cloud account's instance quota at {c['time']} during autoscaling.",
            "New pods stay Pending and the existing ones are overloaded and failing.",
        ]
        fix = f"Request an emergency quota increase and shed non-critical load to keep {n} up."
    return dict(
        title=f"{n} out of capacity",
        alert={"disk": "DiskFull", "conn": "DBConnectionsExhausted", "quota": "QuotaExceeded"}[kind],
        symptoms=sym,
        impact=f"{c['noun'].capitalize()} cannot {c['action']}; writes fail for everyone.",
        cust=f"we cannot {c['action']}, it fails every time",
        metrics={
            "disk": [
                ("disk_used_pct", "100", "90"),
                ("insert_errors_per_min", str(r.randint(300, 5000)), "0"),
            ],
            "conn": [
                ("db_connections", "500/500", "450"),
                ("http_5xx_ratio", f"0.{r.randint(90, 99)}", "0.05"),
            ],
            "quota": [("pending_pods", str(r.randint(10, 80)), "0"), ("cpu_util", "0.99", "0.8")],
        }[kind],
        cause=None,
        tried=_sample(
            r, ["deleted old logs", "restarted a few pods", "asked the cloud provider"], r.randint(1, 2)
        ),
        workaround=None,
        ask="Need the database owners.",
        summary=f"{n} ran out of capacity at {c['time']} and is failing all writes, so {c['noun']} cannot {c['action']}.",
        steps=_steps(
            r,
            [fix],
            [
                f"Declare a SEV1 and page {c['team']}.",
                "Post a status page update.",
                f"Add a capacity alert for {n} at 80%.",
            ],
            3,
            4,
        ),
    )


def capacity_2(r, c):
    n = c["n"]
    pct = r.choice([6, 8, 11, 15, 20])
    return dict(
        title=f"{n} throttling under load",
        alert=r.choice(["ConnectionPoolExhausted", "HPAMaxedOut", "RateLimitedRequests"]),
        symptoms=[
            f"{n} is at its autoscaling maximum since {c['time']} and sheds load with 429s.",
            f"{pct}% of requests are rejected at peak; the rest succeed.",
        ],
        impact=f"About {pct}% of {c['noun']} get errors, and it will get worse as traffic rises toward the evening peak.",
        cust=f"we sometimes get 'too many requests' when we {c['action']}",
        metrics=[
            ("hpa_replicas", f"{c['pods']}/{c['pods']}", ""),
            ("rejected_ratio", f"{pct / 100:.2f}", "0.01"),
            ("cpu_util", f"0.{r.randint(90, 99)}", "0.8"),
        ],
        cause=r.choice(["A marketing campaign started this morning.", "Traffic is 2x normal.", None]),
        tried=_sample(
            r, ["raised the HPA max by hand (blocked by node capacity)", "checked for a traffic attack"], 1
        ),
        workaround=None,
        ask="Need more capacity before the peak.",
        summary=f"{n} is at max capacity since {c['time']} and rejecting about {pct}% of requests, with the peak still ahead.",
        steps=_steps(
            r,
            [f"Raise the {n} autoscaling max and add nodes to the pool before the evening peak."],
            [
                f"Open a SEV2 and page {c['team']}.",
                f"Shed or cache non-critical {n} traffic.",
                "Confirm with marketing how long the campaign runs.",
            ],
            2,
            4,
        ),
    )


def capacity_3(r, c):
    n = c["n"]
    d = r.choice([3, 4, 5, 7])
    res = r.choice(["disk", "Kafka partition storage", "subnet IP addresses"])
    return dict(
        title=f"{n} running out of {res}",
        alert={
            "disk": "DiskForecast",
            "Kafka partition storage": "KafkaStorageForecast",
            "subnet IP addresses": "IPPoolLow",
        }[res],
        symptoms=[
            f"The {res} used by {n} is at {r.randint(78, 88)}% and will run out in about {d} days at the current growth."
        ],
        impact="No impact yet.",
        cust=None,
        metrics=[("used_pct", str(r.randint(78, 88)), "80"), ("days_to_full", str(d), "7")],
        cause=None,
        tried=[],
        workaround=None,
        ask="Needs action this week.",
        summary=f"The {res} used by {n} will run out in about {d} days at the current growth rate, with no impact yet.",
        steps=_steps(
            r,
            [f"Expand (or clean up) the {res} used by {n} before it runs out in {d} days."],
            [f"Open a SEV3 for {c['team']}.", "Find what drove the growth."],
            2,
            3,
        ),
    )


def capacity_4(r, c):
    n = c["n"]
    h = r.choice([35, 45, 55, 60])
    return dict(
        title=f"capacity review: {n}",
        alert=r.choice(["CapacityReport", "QuarterlyReview"]),
        symptoms=[f"The quarterly capacity review shows {n} at {100 - h}% peak utilisation, {h}% headroom."],
        impact="Informational, nothing needs doing now.",
        cust=None,
        metrics=[("peak_util_pct", str(100 - h), "70")],
        cause=None,
        tried=[],
        workaround=None,
        ask="FYI.",
        summary=f"The capacity review shows {n} with {h}% headroom at peak, an informational note.",
        steps=_steps(r, [f"Re-check {n} capacity at the next quarterly review."], ["Log it as SEV4."], 2, 2),
    )


# --------------------------------------------------------------------------------------------
# Scenario table: which services fit each (category, severity)
# --------------------------------------------------------------------------------------------

ALL_TIERS = ("critical", "facing", "data", "internal")
QUEUE_SERVICES = (
    "notification-dispatcher",
    "email-sender",
    "sms-relay",
    "order-service",
    "search-indexer",
    "inventory-sync",
    "ledger-writer",
)
WRONG_DATA_SERVICES = (
    "pricing-engine",
    "catalog-service",
    "search-indexer",
    "search-api",
    "recommendations-svc",
    "reviews-service",
    "notification-dispatcher",
    "email-sender",
    "sms-relay",
    "help-center-web",
    "inventory-sync",
    "shipping-quotes",
    "loyalty-points",
)

SCENARIOS = {
    ("outage", 1): (outage_1, ("critical",)),
    ("outage", 2): (outage_2, ("critical", "facing")),
    ("outage", 3): (outage_3, ("internal", "facing")),
    ("outage", 4): (outage_4, ALL_TIERS),
    ("security", 1): (security_1, ("critical", "facing", "internal")),
    ("security", 2): (security_2, ("critical", "facing")),
    ("security", 3): (security_3, ("internal", "data")),
    ("security", 4): (security_4, ALL_TIERS),
    ("data_quality", 1): (data_1, ("critical",)),
    ("data_quality", 2): (data_2, WRONG_DATA_SERVICES),
    ("data_quality", 3): (data_3, ("data",)),
    ("data_quality", 4): (data_4, ("data", "internal")),
    ("performance", 1): (perf_1, ("critical",)),
    ("performance", 2): (perf_2, ("critical", "facing")),
    ("performance", 3): (perf_3, ("facing", "data")),
    ("performance", 4): (perf_4, ALL_TIERS),
    ("oncall_page", 1): (page_1, ("critical",)),
    ("oncall_page", 2): (page_2, QUEUE_SERVICES),
    ("oncall_page", 3): (page_3, ("facing", "data", "internal")),
    ("oncall_page", 4): (page_4, ALL_TIERS),
    ("cost_spike", 3): (cost_3, ("data", "internal", "facing")),
    ("cost_spike", 4): (cost_4, ALL_TIERS),
    ("cert_expiry", 1): (cert_1, ("critical",)),
    ("cert_expiry", 2): (cert_2, ("critical", "facing")),
    ("cert_expiry", 3): (cert_3, ALL_TIERS),
    ("cert_expiry", 4): (cert_4, ALL_TIERS),
    ("dependency_failure", 1): (vendor_1, ("critical",)),
    ("dependency_failure", 2): (vendor_2, ("critical", "facing")),
    ("dependency_failure", 3): (vendor_3, ("facing", "internal")),
    ("dependency_failure", 4): (vendor_4, ALL_TIERS),
    ("deploy_rollback", 1): (deploy_1, ("critical",)),
    ("deploy_rollback", 2): (deploy_2, ("critical", "facing")),
    ("deploy_rollback", 3): (deploy_3, ("facing", "internal")),
    ("deploy_rollback", 4): (deploy_4, ALL_TIERS),
    ("capacity", 1): (capacity_1, ("critical",)),
    ("capacity", 2): (capacity_2, ("critical", "facing")),
    ("capacity", 3): (capacity_3, ("data", "internal", "facing")),
    ("capacity", 4): (capacity_4, ALL_TIERS),
}
CATEGORIES = sorted({cat for cat, _sev in SCENARIOS})


def _eligible(allowed: tuple) -> list[dict]:
    return [s for s in SERVICES if s["tier"] in allowed or s["name"] in allowed]


# --------------------------------------------------------------------------------------------
# Styles
# --------------------------------------------------------------------------------------------

MONITORS = [
    "Prometheus",
    "Datadog",
    "Grafana OnCall",
    "CloudWatch",
    "Pingdom",
    "New Relic",
    "Honeycomb",
    "Checkly",
]


def _sent(s: str) -> str:
    s = s.strip()
    if not s:
        return s
    if s.split(" ", 1)[0].rstrip(",.:;'") not in SERVICE_NAMES:
        s = s[0].upper() + s[1:]
    return s if s[-1] in ".!?" else s + "."


def _lc(s: str) -> str:
    """Lower-case the first letter unless it starts an acronym or a proper name."""
    first = re.split(r"[\s,.:;'()]", s, maxsplit=1)[0]
    if first in PROPER_NOUNS or first == "I" or not first[:1].isupper():
        return s
    if len(first) == 1 or first[1:].islower():
        return s[0].lower() + s[1:]
    return s


PROPER_NOUNS = (
    {v for vs in VENDORS.values() for v, _k in vs}
    | {v for v, _k in GENERIC_VENDORS}
    | set(NAMES)
    | {"Android", "Safari", "Browsers", "Quarry", "Kafkaesque", "Stratus", "Finance", "German", "EUR", "USD"}
)


def _nodot(s: str) -> str:
    return s[:-1] if s.endswith(".") else s


def _join(items: list[str]) -> str:
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def _slug(s: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", s).lower()


def _detection(r: Random, F: dict, c: dict) -> str:
    return r.choice(
        [
            f"The {F['alert']} alert paged the {c['team']} on-call at {c['time']}.",
            f"A customer ticket came in at {c['time']}, the alert followed a few minutes later.",
            f"{c['who2']} noticed it on the {c['n']} dashboard at {c['time']}.",
            f"{r.choice(MONITORS)} fired {F['alert']} at {c['time']}.",
            f"Support escalated it at {c['time']} after several similar reports.",
        ]
    )


TIER_TAG = {"critical": "tier-0", "facing": "tier-1", "data": "tier-2", "internal": "tier-3"}


def _svc_context(r: Random, c: dict) -> str:
    n, what, noun, action = c["n"], c["what"], c["noun"], c["action"]
    options = {
        "critical": [
            f"For context, {n} is {what}; {noun} need it to {action}.",
            f"{n} is on the critical path: without it {noun} cannot {action}.",
            f"Reminder that {n} ({what}) is tier-0, owned by {c['team']}.",
        ],
        "facing": [
            f"For context, {n} is {what}, customer-facing but not on the login or payment path.",
            f"{n} is tier-1: {noun} use it to {action}.",
            f"{n} ({what}) is owned by {c['team']}; {noun} use it to {action}.",
        ],
        "data": [
            f"For context, {n} is {what}, an internal data job; {noun} use it to {action}.",
            f"{n} is tier-2 (internal data), owned by {c['team']}.",
        ],
        "internal": [
            f"For context, {n} is {what}, internal tooling that {noun} use to {action}.",
            f"{n} is an internal tier-3 tool owned by {c['team']}.",
        ],
    }[c["tier"]]
    return r.choice(options)


def style_pager(r: Random, F: dict, c: dict) -> str:
    n, m = c["n"], F["metrics"]
    mon = r.choice(MONITORS)
    v = r.randrange(3)
    lines: list[str] = []
    if v == 0:
        lines.append(f"[FIRING:{r.randint(1, 4)}] {F['alert']} {n} ({c['region']}, {TIER_TAG[c['tier']]})")
        lines.append(F["title"])
        lines += F["symptoms"]
        for name, val, thr in m[: r.randint(1, max(1, len(m)))]:
            lines.append(f"  {name} = {val}" + (f" (threshold {thr})" if thr else ""))
        lines.append(f"Impact: {F['impact']}")
        lines.append(
            f"Started {c['time']} via {mon} | runbook: https://runbooks.internal/{n}/{_slug(F['alert'])}"
        )
        if r.random() < 0.8:
            note = F["cause"] or r.choice(["looking", "on it", "investigating", "checking dashboards"])
            lines.append(f"ack {c['who']}: {_lc(note)}")
    elif v == 1:
        lines.append(f"Alert: {F['alert']} on {n}")
        lines.append(f"Message: {F['title']}. {' '.join(F['symptoms'])}")
        lines.append(
            f"Source: {mon} | Region: {c['region']} | Since: {c['time']} | Owner: {c['team']} ({TIER_TAG[c['tier']]})"
        )
        if m:
            lines.append("Metrics: " + ", ".join(f"{a}={b}" for a, b, _t in m))
        lines.append(f"Details: {F['impact']}")
        if F["tried"]:
            lines.append(f"Note ({c['who']}, {c['role']}): {_join(F['tried'])}.")
    else:
        body = f"PAGE {n}/{c['region']} {F['alert']}: {F['title']}. {' '.join(F['symptoms'])} {F['impact']}"
        if m:
            a, b, t = r.choice(m)
            body += f" [{a}={b}{' thr ' + t if t else ''}]"
        lines.append(body)
        lines.append(
            f"Triggered {c['time']} by {mon}. Reply 4 to ack, 6 to escalate. Secondary is paged in 15 min."
        )
    return "\n".join(lines)


def style_alert_dump(r: Random, F: dict, c: dict) -> str:
    n, m = c["n"], F["metrics"] or [("status", "triggered", "")]
    v = r.randrange(4)
    base = c["start_dt"]
    lines: list[str] = []
    if v == 0:
        lines.append(f"Alertmanager: {len(m)} alert(s) firing for service={n}")
        for a, b, t in m:
            lines.append(
                f"  alertname={F['alert']} service={n} tier={TIER_TAG[c['tier']]} region={c['region']} metric={a} value={b}"
                + (f" threshold={t}" if t else "")
            )
        lines.append(f"  startsAt={base.strftime('%Y-%m-%dT%H:%M:%S')} ({c['tz'][0]})")
    elif v == 1:
        for k, (a, b, t) in enumerate(m):
            ts = (base + timedelta(seconds=41 * k + r.randint(0, 30))).strftime("%Y-%m-%d %H:%M:%S")
            ts += f" {c['tz'][0]}"
            lvl = r.choice(["WARN", "CRIT", "ALERT"])
            lines.append(
                f"{ts} {lvl} [{r.choice(MONITORS).lower()}] {n}/{c['region']} {a}={b}"
                + (f" (limit {t})" if t else "")
            )
        lines.append(
            f"{(base + timedelta(seconds=41 * len(m) + 35)).strftime('%Y-%m-%d %H:%M:%S')} {c['tz'][0]} INFO {F['title']}"
        )
    elif v == 2:
        a, b, t = m[0]
        lines.append(f"Monitor: [{n}] {F['alert']}")
        lines.append("Status: Triggered")
        lines.append(
            f"Query: avg(last_5m):{a}{{service:{n},region:{c['region']}}}" + (f" > {t}" if t else "")
        )
        lines.append(f"Value: {b}")
        for a2, b2, _t2 in m[1:]:
            lines.append(f"Related: {a2} = {b2}")
        lines.append(f"Triggered at: {c['time']}")
    else:
        a, b, t = m[0]
        lines.append(f'ALARM: "{n}-{_slug(F["alert"])}" in {c["region"]}')
        lines.append(
            f"Reason: Threshold crossed: {r.randint(2, 5)} datapoints for {a} were beyond the threshold"
            + (f" ({t})" if t else "")
            + f", latest {b}."
        )
        lines.append(f"State change: OK -> ALARM at {c['time']}")
        for a2, b2, _t2 in m[1:]:
            lines.append(f"  {a2}: {b2}")
    human = [*F["symptoms"], F["impact"]]
    if r.random() < 0.4:
        human.append(_svc_context(r, c))
    if F["cause"] and r.random() < 0.6:
        human.append(F["cause"])
    lines.append("")
    lines.append(f"-- {r.choice(['note', 'on-call note', 'comment'])} from {c['who']}: " + " ".join(human))
    return "\n".join(lines)


def _casual(r: Random, s: str) -> str:
    s = _lc(s) if r.random() < 0.6 else s
    return _nodot(s) if r.random() < 0.5 else s


def _cap(s: str) -> str:
    return s if s.split(" ", 1)[0] in SERVICE_NAMES else s[:1].upper() + s[1:]


def style_slack(r: Random, F: dict, c: dict) -> str:
    parts = [f"{r.choice(SLACK_OPENERS)} {_casual(r, F['title'])} (started ~{c['time']})"]
    for s in F["symptoms"]:
        parts.append(_casual(r, s))
    parts.append(
        r.choice(["impact: ", "so basically ", "blast radius: ", "", "tl;dr "]) + _lc(F["impact"])
        if r.random() < 0.7
        else F["impact"]
    )
    if F["tried"]:
        parts.append(
            r.choice(["already ", "i ", "we ", "so far we "])
            + _join(F["tried"])
            + r.choice(["", " fwiw", " (nothing conclusive yet)", ", for context"])
        )
    if F["cause"]:
        parts.append(
            r.choice(["my guess: ", "might be related: ", "suspect: ", "possibly: "]) + _lc(F["cause"])
        )
    if F["workaround"]:
        parts.append(_lc(F["workaround"]))
    if r.random() < 0.5:
        parts.append(_casual(r, _svc_context(r, c)))
    if r.random() < 0.35:
        parts.append(
            r.choice(
                [
                    f"dashboard: https://grafana.internal/d/{_hexid(r, 8)}/{c['n']}",
                    f"thread in #{c['team']} has more context",
                    f"{c['who2']} is looking too",
                    "will update here",
                ]
            )
        )
    parts.append(r.choice([f"cc @{c['team']}-oncall ", f"@{c['who2']} ", ""]) + _casual(r, F["ask"]))
    if r.random() < 0.5:
        return "\n".join(parts)
    return " ".join(p if p[-1] in ".!?" else p + "." for p in parts)


def style_support(r: Random, F: dict, c: dict) -> str:
    n = c["n"]
    if F["cust"]:
        first = r.choice(NAMES)
        channel = r.choice(["email", "chat", "phone (transcribed)", "web form"])
        subj = r.choice(["URGENT: ", "Problem: ", "", "Help - ", "Re: "]) + r.choice(
            [
                f"cannot {c['action']}",
                "errors on your platform",
                "is something down?",
                f"issue since {c['time']}",
            ]
        )
        body = [
            _sent(
                r.choice(
                    [f"since about {c['time']} {F['cust']}", f"{F['cust']}, this started around {c['time']}"]
                )
            ),
        ]
        body += _sample(
            r,
            [
                f"We are on the {r.choice(['Starter', 'Business', 'Enterprise'])} plan and our team relies on this every day.",
                f"{r.randint(2, 40)} of my colleagues see the same thing.",
                "We tried another browser and a different network, same result.",
                "Can you tell us what is going on and when it will be fixed?",
                f"Our account id is {r.randint(100000, 999999)} if that helps.",
                "I attached a screenshot of the error.",
            ],
            r.randint(1, 3),
        )
        note = [
            r.choice(
                ["Reproduced on our side.", "Checked the status dashboards.", "Confirmed with engineering."]
            ),
            *F["symptoms"],
            F["impact"],
        ]
        if F["cause"] and r.random() < 0.5:
            note.append(F["cause"])
        if r.random() < 0.6:
            note.append(_svc_context(r, c))
        note.append(
            r.choice(
                [
                    f"Escalating to {c['team']} (owners of {n}).",
                    f"Handing over to the {c['team']} on-call for {n}.",
                    f"Linked to the {n} queue for {c['team']}.",
                ]
            )
        )
        return "\n".join(
            [
                f"Ticket #{c['ticket']} | Channel: {channel} | Customer: {c['cust']}",
                f"Subject: {subj}",
                "",
                r.choice(
                    ["Hi,", "Hello support team,", "Hi there,", "Good morning,", "To whom it may concern,"]
                ),
                " ".join(body),
                r.choice(["Thanks,", "Regards,", "Please advise.", "Thank you,", "Best,"]),
                f"{first} ({c['cust']})",
                "",
                f"--- Internal note from {c['who']} ({r.choice(['support tier 2', 'support lead', 'customer success'])}) ---",
                " ".join(note),
            ]
        )
    proj = r.choice(["OPS", "INFRA", "HELP", "SRE", "PLAT", "DATA"])
    lines = [
        f"{proj}-{r.randint(100, 9999)}: {F['title']}",
        f"Reporter: {c['who']} ({c['role']}) | Component: {n} | Env: production / {c['region']}",
        f"Priority requested by reporter: {r.choice(['Normal', 'High', 'Low', 'not set'])}",
        "",
        "Description:",
        " ".join(F["symptoms"]) + (" " + _svc_context(r, c) if r.random() < 0.6 else ""),
        f"Impact: {F['impact']}",
    ]
    if F["tried"]:
        lines.append(f"Done so far: {_join(F['tried'])}.")
    if F["cause"]:
        lines.append(f"Possible cause: {F['cause']}")
    if F["workaround"]:
        lines.append(F["workaround"])
    lines.append(F["ask"])
    return "\n".join(lines)


def style_postmortem(r: Random, F: dict, c: dict) -> str:
    h_sum = r.choice(["Summary", "Overview", "What happened"])
    h_imp = r.choice(["Impact", "Customer impact", "User impact", "Blast radius"])
    out = [
        f"{c['inc']}: {_cap(F['title'])}",
        f"Status: {r.choice(['Investigating', 'Identified', 'Mitigating', 'Open'])} | Incident commander: {c['who']}"
        + (f" | Scribe: {c['who2']}" if r.random() < 0.5 else ""),
        "",
        h_sum,
        f"On {c['weekday']} {c['date']} at {c['time']}, {_lc(F['symptoms'][0])} "
        + " ".join(F["symptoms"][1:]),
        "",
        h_imp,
        F["impact"] + (" " + _svc_context(r, c) if r.random() < 0.6 else ""),
    ]
    if r.random() < 0.6:
        out += ["", "Detection", _detection(r, F, c)]
    if r.random() < 0.7:
        out += ["", f"Timeline ({c['tz'][0]})", f"- {c['time']}: {_nodot(F['symptoms'][0])}"]
        for k, t in enumerate(F["tried"]):
            out.append(f"- {c['at'](min(c['mins'], 3 + 4 * k))}: {_cap(t)}")
        out.append(
            f"- {c['now']}: {r.choice(['Still ongoing.', 'Investigation continues.', 'This write-up started.'])}"
        )
    if F["cause"]:
        out += [
            "",
            r.choice(["Current hypothesis", "Suspected cause", "Contributing factors (preliminary)"]),
            F["cause"],
        ]
    if F["workaround"]:
        out += ["", "Mitigation", F["workaround"]]
    if r.random() < 0.5:
        out += [
            "",
            r.choice(["Open questions", "Unknowns"]),
            "- "
            + r.choice(
                [
                    "Why did monitoring not catch this earlier?",
                    f"Is anything other than {c['n']} affected?",
                    "Did the last game day cover this failure mode?",
                ]
            ),
        ]
    if r.random() < 0.5:
        out += ["", f"Next update at {c['at'](c['mins'] + 30)} in #{c['inc'].lower()}."]
    return "\n".join(out)


def style_bullets(r: Random, F: dict, c: dict) -> str:
    labels = r.choice(
        [
            ("What", "Where", "When", "Impact", "Tried", "Suspected cause", "Ask"),
            ("Symptom", "Service", "Start", "Blast radius", "Done so far", "Theory", "Need"),
            ("Issue", "System", "Since", "Who is affected", "Actions taken", "Possible cause", "Request"),
            ("Problem", "Component", "First seen", "User impact", "Already tried", "Hypothesis", "Next"),
        ]
    )
    mark = r.choice(["-", "*", "•"])
    head = r.choice(
        [
            F["title"],
            f"Incident report: {c['n']}",
            f"{c['n']} problem ({c['date']})",
            "Quick triage notes",
            f"[{c['team']}] heads-up",
        ]
    )
    rows = [
        (labels[0], " ".join(F["symptoms"])),
        (labels[1], f"{c['n']} ({c['region']})"),
        (labels[2], f"{c['time']}, {c['date']}"),
        (labels[3], F["impact"]),
    ]
    if F["tried"]:
        rows.append((labels[4], _join(F["tried"])))
    if F["cause"]:
        rows.append((labels[5], F["cause"]))
    if F["workaround"]:
        rows.append(("Workaround", _nodot(F["workaround"].removeprefix("Workaround: "))))
    if r.random() < 0.6:
        rows.append(("Context", _svc_context(r, c)))
    if r.random() < 0.4:
        rows.append(("Reporter", f"{c['who']}, {c['role']}"))
    rows.append((labels[6], F["ask"]))
    if r.random() < 0.3:
        rows.insert(1, rows.pop(3))
    return head + "\n" + "\n".join(f"{mark} {k}: {v}" for k, v in rows)


def _broken(r: Random, s: str) -> str:
    s = re.sub(r"\b(the|a|an) ", lambda m: "" if r.random() < 0.5 else m.group(0), s)
    for a, b in [
        ("cannot", "can not"),
        (" since ", " from "),
        (" has been ", " is "),
        ("is failing", "is fail"),
        (" returns ", " is returning "),
        (" fails ", " is failing "),
        ("doesn't", "is not"),
        ("isn't", "is not"),
        (" were ", " was "),
        (" did not ", " not "),
    ]:
        if a in s and r.random() < 0.65:
            s = s.replace(a, b)
    return s


def style_non_native(r: Random, F: dict, c: dict) -> str:
    n = c["n"]
    out = [
        r.choice(
            [
                f"Hello team,\nI am writing for inform you about problem with {n}.",
                f"Dear support, we are facing issue in {n} from {c['time']}.",
                f"Hi, good day. Please kindly check {n}, it is having problem.",
                f"Hello, I want to report one issue regarding {n} in {c['region']}.",
                f"Hi all, urgent attention needed for {n} please.",
            ]
        )
    ]
    out.append(" ".join(_broken(r, s) for s in F["symptoms"]))
    if c["time"] not in "\n".join(out):
        out.append(
            r.choice(["Problem is starting from ", "Start time is ", "It is happening from "])
            + c["time"]
            + "."
        )
    lead = r.choice(["Impact is: ", "Regarding impact, ", "For impact, ", ""])
    out.append(lead + _broken(r, _lc(F["impact"]) if lead else F["impact"]))
    if F["tried"]:
        out.append(
            r.choice(["Already we ", "We did already: ", "From our side we "])
            + _join(F["tried"])
            + r.choice([" but problem is still there.", ".", ", still same."])
        )
    if F["cause"]:
        out.append(
            r.choice(["Maybe reason is: ", "We are thinking cause is: ", "Possible "])
            + _broken(r, _lc(F["cause"]))
        )
    if F["workaround"]:
        out.append(_broken(r, F["workaround"]))
    if r.random() < 0.5:
        out.append(_broken(r, _svc_context(r, c)))
    out.append(
        r.choice(
            [
                "Please to check and revert back.",
                "Kindly do the needful.",
                "Waiting your reply.",
                f"Please ask {c['team']} team to look on this.",
                "Request you to check on priority.",
            ]
        )
    )
    out.append(r.choice(["Thanks and regards,", "Best regards,", "Thank you,"]) + f"\n{c['who']}")
    return "\n".join(out)


def style_rambling(r: Random, F: dict, c: dict) -> str:
    fillers = _sample(r, RAMBLE_FILLERS, 12)
    target = r.randint(150, 245)
    parts = [
        r.choice(
            [
                "Hi all, so this is going to be a bit long, bear with me.",
                "Hey, not sure who owns this exactly, so posting it here.",
                "OK so something weird is going on and I want to write it all down.",
                "Hello everyone, long message incoming, sorry.",
                "Morning all. I've been staring at this for a while and want a second opinion.",
            ]
        ),
        fillers[0],
        f"Around {c['time']} I {r.choice(['noticed', 'saw', 'started seeing', 'realised'])} that {_lc(F['symptoms'][0])}",
    ]
    parts += F["symptoms"][1:]
    parts.append(fillers[1])
    parts.append(
        r.choice(
            ["As far as I can tell, ", "From what I can see, ", "The important bit: ", "In terms of impact, "]
        )
        + _lc(F["impact"])
    )
    if F["tried"]:
        parts.append(
            f"I already {_join(F['tried'])}, "
            + r.choice(["nothing conclusive yet", "for what that is worth", "but I am not sure it mattered"])
            + "."
        )
    parts.append(fillers[2])
    if r.random() < 0.7:
        parts.append(_svc_context(r, c))
    if F["cause"]:
        parts.append(
            r.choice(
                [
                    "My theory, and it is only a theory: ",
                    "One thing that might be relevant: ",
                    "Possibly relevant: ",
                ]
            )
            + _lc(F["cause"])
        )
    if F["workaround"]:
        parts.append(F["workaround"])
    tail = [
        F["ask"],
        r.choice(["Thanks!", "Cheers.", "Thanks for reading all this.", "Sorry again for the length."]),
    ]
    k = 3
    while len(" ".join(parts + tail).split()) + len(fillers[k].split()) <= target and k < len(fillers) - 1:
        parts.append(fillers[k])
        k += 1
    sentences = [_sent(p) for p in parts + tail]
    if r.random() < 0.5:
        cut = len(sentences) // 2 + r.randint(-1, 1)
        return " ".join(sentences[:cut]) + "\n\n" + " ".join(sentences[cut:])
    return " ".join(sentences)


STYLES = {
    "pager": style_pager,
    "alert_dump": style_alert_dump,
    "slack": style_slack,
    "support_ticket": style_support,
    "postmortem": style_postmortem,
    "bullets": style_bullets,
    "non_native": style_non_native,
    "rambling": style_rambling,
}


# --------------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------------


def _trigrams(text: str) -> set:
    w = re.findall(r"\w+", text.lower())
    return {(w[i], w[i + 1], w[i + 2]) for i in range(len(w) - 2)}


def _jaccard(a: set, b: set) -> float:
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def format_gold(severity: int, summary: str, steps: list[str]) -> str:
    return f"Severity: SEV{severity}\nSummary: {summary}\nNext steps:\n" + "\n".join(f"- {s}" for s in steps)


def build(seed: int = SEED, n: int = N_REPORTS) -> list[dict]:
    """Return ``n`` rows; the same seed always gives the same rows."""
    r = Random(seed)
    quotas = [n // 4 + (1 if i < n % 4 else 0) for i in range(4)]
    severities = [sev for sev, q in zip((1, 2, 3, 4), quotas, strict=True) for _ in range(q)]
    r.shuffle(severities)
    usage = {s["name"]: 0 for s in SERVICES}
    decks: dict = {}

    def draw(key, pool):
        if not decks.get(key):
            decks[key] = list(pool)
            r.shuffle(decks[key])
        return decks[key].pop()

    rows: list[dict] = []
    grams: list[set] = []
    for i, sev in enumerate(severities):
        cat = draw(("cat", sev), [cat for cat in CATEGORIES if (cat, sev) in SCENARIOS])
        fn, allowed = SCENARIOS[(cat, sev)]
        style = draw("style", sorted(STYLES))
        for attempt in range(400):
            if attempt and attempt % 25 == 0:
                style = r.choice(sorted(STYLES))
            pool = _eligible(allowed)
            low = min(usage[s["name"]] for s in pool)
            svc = r.choice([s for s in pool if usage[s["name"]] <= low + (attempt // 10)])
            c = _context(r, svc)
            facts = fn(r, c)
            report = STYLES[style](r, facts, c).strip()
            words = len(report.split())
            if not MIN_WORDS <= words <= MAX_WORDS:
                continue
            g = _trigrams(report)
            if any(_jaccard(g, h) >= MAX_JACCARD for h in grams):
                continue
            break
        else:  # pragma: no cover - the seed is fixed; this would mean the building blocks are too thin
            raise RuntimeError(f"could not generate a distinct report #{i} ({cat}, SEV{sev}, {style})")
        usage[svc["name"]] += 1
        grams.append(g)
        rows.append(
            {
                "id": f"inc-{i + 1:04d}",
                "category": cat,
                "style": style,
                "service": svc["name"],
                "split": "train",
                "prompt": f"{INSTRUCTION}\n\n{report}",
                "gold_severity": f"SEV{sev}",
                "gold": format_gold(sev, facts["summary"], facts["steps"]),
            }
        )
    for sev in (1, 2, 3, 4):
        idx = [k for k, row in enumerate(rows) if row["gold_severity"] == f"SEV{sev}"]
        r.shuffle(idx)
        for k in idx[: round(len(idx) * HELDOUT_FRACTION)]:
            rows[k]["split"] = "heldout"
    return rows


def to_jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def main() -> None:
    rows = build(SEED)
    OUT_PATH.write_text(to_jsonl(rows), encoding="utf-8")
    RUBRIC_PATH.write_text(JUDGE_RUBRIC_MD, encoding="utf-8")
    print(f"wrote {len(rows)} rows to {OUT_PATH} and the rubric to {RUBRIC_PATH}")


if __name__ == "__main__":
    main()

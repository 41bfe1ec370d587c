"""Demo data for `manage.py seed_demo`: the three shipped workflows and a set of cases.

Cases are submitted through the engine like any client's; the worker of `make run`
then takes each as far as it goes on its own (approved, in review, waiting for
documents, compensated...). A second run finds them and submits nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from audit.context import Actor
from orchestration.models import Case
from orchestration.services import case_submit, workflow_load

WORKFLOWS_DIR = Path(__file__).resolve().parent / "workflows"
DEMO_PREFIX = "DEMO-"

_VENDORS = (
    ("ACME Office Supplies GmbH", "EUR", "DE123456789", "Toner and printer paper"),
    ("Nimbus Cloud Hosting Ltd", "GBP", "", "Cloud hosting, March"),
    ("Grand Hotel Alpenblick", "EUR", "ATU12345678", "Hotel, 3 nights"),
    ("Lumen Energy SA", "EUR", "FR12345678901", "Electricity"),
    ("Blue Harbor Travel", "USD", "", "Flights to the customer workshop"),
)
_PEOPLE = (
    ("Maria Jensen", "DK", "1984-02-11"),
    ("Jonas Weber", "DE", "1990-07-23"),
    ("Barnaby Quillfeather", "GB", "1971-05-02"),  # on the fictional watch list
    ("Aiko Tanaka", "JP", "1995-12-01"),
    ("Zorblax Trading GmbH", "DE", ""),  # a listed company
    ("Lucía Fernández", "ES", "1988-09-17"),
)
_POSTS = (
    "Great write-up, thanks for sharing the benchmark numbers!",
    "BUY NOW!!! cheap watches at http://deals.example http://deals2.example click here",
    "You are such an idiot, nobody wants your opinion",
    "Call me on +49 170 1234567 or write to jo@example.org about the flat",
    "The meeting moved to Thursday, same room.",
    "FREE MONEY!!! act now www.win.example",
)


def _demo_cases() -> Iterator[dict[str, Any]]:
    for n in range(40):
        vendor, currency, vat, text = _VENDORS[n % len(_VENDORS)]
        amount = f"{(n * 733) % 14000 + 45}.{n % 100:02d}"
        yield {
            "workflow": "invoice-approval",
            "external_ref": f"{DEMO_PREFIX}INV-{n + 1:04d}",
            "payload": {
                "vendor": vendor,
                "amount": amount,
                "currency": currency,
                "invoice_number": f"INV-2026-{n + 1:04d}",
                **({"vat_id": vat} if vat else {}),
                "text": text,
            },
            "impact": ("low", "medium", "high", "critical")[n % 4],
            "region": ("eu", "eu", "us", "apac")[n % 4],
            "skills": ["invoices"],
            "priority": 1 + n % 5,
            "sources": [
                {"title": "Invoice text", "kind": "text", "content": f"{vendor}\n{text}\n{amount}"},
                {"title": "Vendor record", "kind": "url", "url": f"https://erp.example/v/{n % 5}"},
            ],
        }
    for n in range(30):
        name, country, born = _PEOPLE[n % len(_PEOPLE)]
        yield {
            "workflow": "kyc-screening",
            "external_ref": f"{DEMO_PREFIX}KYC-{n + 1:04d}",
            "payload": {
                "name": name,
                "country": country,
                **({"date_of_birth": born} if born else {}),
            },
            "impact": ("medium", "high", "critical")[n % 3],
            "region": ("eu", "us")[n % 2],
            "skills": ["kyc"],
            "priority": 1 + n % 3,
        }
    for n in range(30):
        yield {
            "workflow": "content-moderation",
            "external_ref": f"{DEMO_PREFIX}MOD-{n + 1:04d}",
            "payload": {"text": _POSTS[n % len(_POSTS)], "author": f"user{n % 7}"},
            "impact": ("low", "medium", "high")[n % 3],
            "region": ("eu", "us", "apac")[n % 3],
            "skills": ["moderation"],
            "priority": 1 + n % 4,
        }


def seed_demo(log: Callable[[str], None]) -> None:
    actor = Actor.system("seed_demo")
    for path in sorted(WORKFLOWS_DIR.glob("*.json")):
        workflow, created = workflow_load(document=json.loads(path.read_text()), actor=actor)
        log(f"workflow {workflow.slug} v{workflow.version}: {'loaded' if created else 'exists'}")
    existing = set(
        Case.objects.filter(external_ref__startswith=DEMO_PREFIX).values_list(
            "external_ref", flat=True
        )
    )
    submitted = 0
    for spec in _demo_cases():
        if spec["external_ref"] in existing:
            continue
        case_submit(actor=Actor.api_client("demo", "demo-erp"), **spec)
        submitted += 1
    log(f"demo cases: {submitted} submitted, {len(existing)} already there")

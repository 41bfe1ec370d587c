"""Invoice approval workers: extract fields, validate them, post to the (simulated) ledger.

Every handler here is a pure function of its StepContext: no clock, no network, no
randomness. The ledger is simulated; its references derive from the step's
idempotency key so that an at-least-once redelivery posts nothing twice.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from orchestration.handlers.common import (
    latest_output,
    optional_str,
    parse_money,
    reference,
    required_str,
    thaw,
)
from orchestration.workers import Output, PermanentError, StepContext, worker

ALLOWED_CURRENCIES = ("CHF", "CZK", "DKK", "EUR", "GBP", "NOK", "PLN", "SEK", "USD")
# Currencies of EU member states: an invoice in one of them should carry a VAT id.
EU_CURRENCIES = frozenset({"CZK", "DKK", "EUR", "PLN", "SEK"})
REVIEW_THRESHOLD = Decimal("10000.00")
PAYABLES_ACCOUNT = "1600"

# VAT identification numbers, after upper-casing and removing spaces, dots and dashes.
VAT_PATTERNS: Mapping[str, re.Pattern[str]] = {
    "AT": re.compile(r"^ATU\d{8}$"),
    "BE": re.compile(r"^BE[01]\d{9}$"),
    "DE": re.compile(r"^DE\d{9}$"),
    "DK": re.compile(r"^DK\d{8}$"),
    "ES": re.compile(r"^ES[0-9A-Z]\d{7}[0-9A-Z]$"),
    "FR": re.compile(r"^FR[0-9A-HJ-NP-Z]{2}\d{9}$"),
    "IT": re.compile(r"^IT\d{11}$"),
    "NL": re.compile(r"^NL\d{9}B\d{2}$"),
    "PL": re.compile(r"^PL\d{10}$"),
    "SE": re.compile(r"^SE\d{10}01$"),
}


@dataclass(frozen=True)
class GLRule:
    account: str
    label: str
    keywords: tuple[str, ...]


# Checked against vendor, text and line descriptions; the rule with most keyword hits
# wins, ties go to the earlier rule.
GL_RULES = (
    GLRule("6815", "IT services and hosting", ("cloud", "hosting", "server", "saas", "domain")),
    GLRule("6650", "Travel expenses", ("travel", "hotel", "flight", "airline", "rail", "taxi")),
    GLRule("6800", "Office supplies", ("office", "stationery", "paper", "toner")),
    GLRule("6600", "Advertising", ("advertising", "marketing", "campaign")),
)
DEFAULT_GL = GLRule("6100", "Purchased services (default account)", ())

_CURRENCY_SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP"}
_CODES = "|".join(ALLOWED_CURRENCIES)
_NUMBER = r"\d{1,3}(?:[, ]\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?"
_TEXT_AMOUNT = re.compile(
    r"\b(?:grand\s+total|total(?:\s+due)?|amount(?:\s+due)?|balance\s+due)\s*[:=]?\s*"
    rf"(?:(?P<code>{_CODES})|(?P<symbol>[€$£]))?\s*(?P<amount>{_NUMBER})",
    re.IGNORECASE,
)
_TEXT_CURRENCY = re.compile(rf"\b({_CODES})\b|([€$£])")
# The label is matched in any case; captured values must hold a digit, so that
# "VAT registration" or "invoice number date" capture nothing.
_TEXT_NUMBER = re.compile(
    r"(?i:\binvoice\s*(?:no\.?|number|nr\.?|#)\s*[:.]?\s*)"
    r"(?P<number>(?=[A-Za-z0-9/-]*\d)[A-Za-z0-9][A-Za-z0-9/-]{2,31})"
)
_TEXT_INV = re.compile(r"\b(?P<number>INV-[A-Z0-9/-]{2,28})\b")
_TEXT_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_TEXT_DOT_DATE = re.compile(r"\b(\d{1,2})\.(\d{1,2})\.(\d{4})\b")
_TEXT_VAT = re.compile(
    r"(?i:\b(?:vat|ust-?idnr\.?)\s*(?:id|no\.?|number)?\s*[:.]?\s*)"
    r"(?P<vat>[A-Z]{2}(?=[A-Z0-9]*\d)[A-Z0-9]{8,12})\b"
)
_VAT_SEPARATORS = re.compile(r"[\s.\-]")


def _snippet(text: str, match: re.Match[str]) -> str:
    return " ".join(text[match.start() : match.end()].split())


def _text_date(text: str) -> tuple[str, str] | None:
    """The first real calendar date in the text (ISO or DD.MM.YYYY), with the words found."""
    candidates = [
        (m.start(), (int(m[1]), int(m[2]), int(m[3])), m) for m in _TEXT_ISO_DATE.finditer(text)
    ] + [(m.start(), (int(m[3]), int(m[2]), int(m[1])), m) for m in _TEXT_DOT_DATE.finditer(text)]
    for _, (year, month, day), match in sorted(candidates, key=lambda c: c[0]):
        try:
            return dt.date(year, month, day).isoformat(), _snippet(text, match)
        except ValueError:
            continue  # "2026-02-30" is no date; try the next candidate
    return None


def _vat(value: str) -> str:
    return _VAT_SEPARATORS.sub("", value).upper()


def _iso_date(value: str, *, field: str) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise PermanentError(f"{field} is not an ISO date (YYYY-MM-DD): {value!r}") from None


def _lines(payload: Mapping[str, Any]) -> list[dict[str, str]]:
    raw = payload.get("lines")
    if raw is None:
        return []
    if not isinstance(raw, list | tuple):
        raise PermanentError(f"payload.lines is not a list: {raw!r}")
    lines = []
    for index, line in enumerate(raw):
        where = f"payload.lines[{index}]"
        if not isinstance(line, Mapping):
            raise PermanentError(f"{where} is not an object: {line!r}")
        if "amount" not in line:
            raise PermanentError(f"{where}.amount is missing")
        amount = parse_money(line["amount"], field=f"{where}.amount")
        description = optional_str(line, "description", where=where) or ""
        lines.append({"description": " ".join(description.split()), "amount": str(amount)})
    return lines


def _gl_rule(haystack: str) -> tuple[GLRule, list[str]]:
    """The rule whose keywords the text mentions most, with the keywords it matched."""
    best, best_hits = DEFAULT_GL, list[str]()
    for rule in GL_RULES:
        hits = [k for k in rule.keywords if re.search(rf"\b{re.escape(k)}", haystack)]
        if len(hits) > len(best_hits):
            best, best_hits = rule, hits
    return best, best_hits


@dataclass
class _Extraction:
    invoice: dict[str, Any]
    found_in: dict[str, str]
    rule: GLRule
    keywords: list[str]
    suggestions: list[dict[str, Any]]
    conflicts: int


def _extract(payload: Mapping[str, Any]) -> _Extraction:
    """Read and normalise an invoice from a payload; PermanentError on input that cannot work."""
    text = optional_str(payload, "text") or ""
    vendor = " ".join(required_str(payload, "vendor").split())
    found_in: dict[str, str] = {"vendor": "payload"}
    suggestions: list[dict[str, Any]] = []
    conflicts = 0

    text_amount = _TEXT_AMOUNT.search(text) if text else None
    if payload.get("amount") is not None:
        amount = parse_money(payload["amount"], field="payload.amount")
        found_in["amount"] = "payload"
        if text_amount is not None:
            said = parse_money(text_amount["amount"], field="payload.text (amount)")
            if said != amount:
                conflicts += 1
                suggestions.append(
                    {
                        "field": "amount",
                        "value": str(said),
                        "reason": f"the invoice text says {_snippet(text, text_amount)!r}, "
                        f"the payload says {amount}",
                    }
                )
    elif text_amount is not None:
        amount = parse_money(text_amount["amount"], field="payload.text (amount)")
        found_in["amount"] = "text"
        suggestions.append(
            {
                "field": "amount",
                "value": str(amount),
                "reason": f"read from the invoice text: {_snippet(text, text_amount)!r}",
            }
        )
    else:
        raise PermanentError("payload.amount is missing (and the text names no total)")

    currency = optional_str(payload, "currency")
    if currency is not None:
        currency = currency.upper()
        found_in["currency"] = "payload"
    else:
        if text_amount is not None and (text_amount["code"] or text_amount["symbol"]):
            code = text_amount["code"] or _CURRENCY_SYMBOLS[text_amount["symbol"]]
        else:
            mentioned = _TEXT_CURRENCY.search(text) if text else None
            if mentioned is None:
                raise PermanentError("payload.currency is missing (and the text names none)")
            code = mentioned[1] or _CURRENCY_SYMBOLS[mentioned[2]]
        currency = code.upper()
        found_in["currency"] = "text"
        suggestions.append(
            {"field": "currency", "value": currency, "reason": "read from the invoice text"}
        )
    if currency not in ALLOWED_CURRENCIES:
        raise PermanentError(
            f"payload.currency is not an accepted ISO 4217 code: {currency!r} "
            f"(accepted: {', '.join(ALLOWED_CURRENCIES)})"
        )

    invoice_number = optional_str(payload, "invoice_number")
    if invoice_number is not None:
        found_in["invoice_number"] = "payload"
    elif text:
        match = _TEXT_NUMBER.search(text) or _TEXT_INV.search(text)
        if match is not None:
            invoice_number = match["number"].upper()
            found_in["invoice_number"] = "text"
            suggestions.append(
                {
                    "field": "invoice_number",
                    "value": invoice_number,
                    "reason": f"read from the invoice text: {_snippet(text, match)!r}",
                }
            )

    invoice_date = optional_str(payload, "invoice_date")
    if invoice_date is not None:
        invoice_date = _iso_date(invoice_date, field="payload.invoice_date")
        found_in["invoice_date"] = "payload"
    elif text:
        dated = _text_date(text)
        if dated is not None:
            invoice_date, words = dated
            found_in["invoice_date"] = "text"
            suggestions.append(
                {
                    "field": "invoice_date",
                    "value": invoice_date,
                    "reason": f"read from the invoice text: {words!r}",
                }
            )

    vat_id = optional_str(payload, "vat_id")
    if vat_id is not None:
        vat_id = _vat(vat_id)
        found_in["vat_id"] = "payload"
    elif text:
        match = _TEXT_VAT.search(text)
        if match is not None:
            vat_id = _vat(match["vat"])
            found_in["vat_id"] = "text"
            suggestions.append(
                {
                    "field": "vat_id",
                    "value": vat_id,
                    "reason": f"read from the invoice text: {_snippet(text, match)!r}",
                }
            )

    lines = _lines(payload)
    haystack = " ".join([vendor, text, *(line["description"] for line in lines)]).casefold()
    rule, keywords = _gl_rule(haystack)
    if keywords:
        reason = f"mentions {', '.join(repr(k) for k in keywords)}: {rule.label.lower()}"
    else:
        reason = "no account rule matched the vendor or text; default account, please check"
    suggestions.insert(0, {"field": "gl_account", "value": rule.account, "reason": reason})

    invoice = {
        "vendor": vendor,
        "amount": str(amount),
        "currency": currency,
        "invoice_number": invoice_number,
        "invoice_date": invoice_date,
        "vat_id": vat_id,
        "lines": lines,
        "gl_account": rule.account,
    }
    return _Extraction(invoice, found_in, rule, keywords, suggestions, conflicts)


def _invoice(ctx: StepContext) -> dict[str, Any]:
    """The invoice an earlier extract step produced, or the payload read the same way."""
    earlier = latest_output(ctx, "invoice")
    if earlier is not None and isinstance(earlier["invoice"], Mapping):
        return dict(thaw(earlier["invoice"]))
    return _extract(ctx.payload).invoice


def _check_postable(invoice: Mapping[str, Any]) -> Decimal:
    amount = parse_money(invoice.get("amount"), field="payload.amount")
    if amount <= 0:
        raise PermanentError(f"payload.amount must be greater than zero: {invoice['amount']!r}")
    currency = invoice.get("currency")
    if currency not in ALLOWED_CURRENCIES:
        raise PermanentError(f"payload.currency is not an accepted ISO 4217 code: {currency!r}")
    return amount


@worker("invoice.extract")
def extract(ctx: StepContext) -> Output:
    """Extract and normalise invoice fields and propose a GL account.

    Reads vendor, amount, currency and the optional invoice_number, invoice_date,
    vat_id and lines from the payload; fields missing there are read from
    payload.text with regexes (total, invoice number, date, VAT id). The GL account
    comes from GL_RULES by keywords in vendor, text and line descriptions.

    Confidence: 0.45, plus 0.25 x the share of the optional fields found (invoice
    number, date, VAT id), plus 0.25 when an account rule matched (the default account
    is a guess), minus 0.2 for each disagreement between payload and text.
    """
    found = _extract(ctx.payload)
    optional = ("invoice_number", "invoice_date", "vat_id")
    completeness = sum(1 for f in optional if found.invoice[f] is not None) / len(optional)
    confidence = 0.45 + 0.25 * completeness + (0.25 if found.keywords else 0.0)
    confidence = round(max(0.05, min(1.0, confidence - 0.2 * found.conflicts)), 2)
    proposed = {k: v for k, v in found.invoice.items() if k != "lines" and v is not None}
    return {
        "invoice": found.invoice,
        "found_in": found.found_in,
        "rule": {
            "gl_account": found.rule.account,
            "label": found.rule.label,
            "keywords": found.keywords,
        },
        "proposed": proposed,
        "confidence": confidence,
        "suggestions": found.suggestions,
    }


def _finding(code: str, field: str, severity: str, message: str) -> dict[str, str]:
    return {"code": code, "field": field, "severity": severity, "message": message}


@worker("invoice.validate", outcomes=("ok", "flagged"))
def validate(ctx: StepContext) -> Output:
    """Check the extracted invoice; outcome "flagged" when a person should look closer.

    Refuses (PermanentError) an amount that is not above zero or a currency outside
    ALLOWED_CURRENCIES. Flags an amount above REVIEW_THRESHOLD, a missing VAT id on an
    invoice in an EU currency, a VAT id that does not fit its country's format, and
    lines that do not add up to the amount. Duplicate detection is not done here.

    Confidence: the extract step's (0.8 when there is none) when nothing is flagged;
    when flagged, half of that less 0.1 per further flag, never below 0.05.
    """
    invoice = _invoice(ctx)
    amount = _check_postable(invoice)
    currency = invoice["currency"]
    findings: list[dict[str, str]] = []
    suggestions: list[dict[str, Any]] = []

    if amount > REVIEW_THRESHOLD:
        findings.append(
            _finding(
                "amount_above_threshold",
                "amount",
                "flag",
                f"{amount} {currency} is above the {REVIEW_THRESHOLD} review threshold",
            )
        )

    vat_id = invoice.get("vat_id")
    if not vat_id:
        if currency in EU_CURRENCIES:
            findings.append(
                _finding(
                    "vat_id_missing",
                    "vat_id",
                    "flag",
                    f"an invoice in {currency} should carry the vendor's VAT id; none was given",
                )
            )
    else:
        pattern = VAT_PATTERNS.get(vat_id[:2])
        if pattern is None:
            findings.append(
                _finding(
                    "vat_id_unchecked",
                    "vat_id",
                    "info",
                    f"no format rule for VAT ids of country {vat_id[:2]!r}; not checked",
                )
            )
        elif not pattern.match(vat_id):
            findings.append(
                _finding(
                    "vat_id_malformed",
                    "vat_id",
                    "flag",
                    f"{vat_id!r} does not have the format of a {vat_id[:2]} VAT id",
                )
            )

    lines = invoice.get("lines") or []
    if lines:
        total = sum((Decimal(line["amount"]) for line in lines), Decimal("0.00"))
        if total != amount:
            findings.append(
                _finding(
                    "lines_total_mismatch",
                    "amount",
                    "flag",
                    f"the {len(lines)} lines add up to {total}, the invoice says {amount}",
                )
            )
            suggestions.append(
                {"field": "amount", "value": str(total), "reason": "the sum of the invoice lines"}
            )

    flags = [f for f in findings if f["severity"] == "flag"]
    extracted = latest_output(ctx, "invoice")
    base = extracted.get("confidence") if extracted is not None else None
    base = float(base) if isinstance(base, int | float) else 0.8
    if flags:
        confidence = round(max(0.05, base / 2 - 0.1 * (len(flags) - 1)), 2)
    else:
        confidence = round(base, 2)
        suggestions.append(
            {"action": "approve", "reason": "amount, currency and VAT id passed every check"}
        )
    return {
        "outcome": "flagged" if flags else "ok",
        "findings": findings,
        "confidence": confidence,
        "suggestions": suggestions,
    }


@worker("invoice.post")
def post(ctx: StepContext) -> Output:
    """Post the invoice to the simulated ledger: expense debit, payables credit.

    Books the GL account the case proposes now (a reviewer's edit wins over what
    extract suggested). The posting id derives from the idempotency key, so a
    redelivered step run posts under the same id and the ledger can dedupe it.
    """
    invoice = _invoice(ctx)
    amount = str(_check_postable(invoice))
    gl_account = ctx.proposed.get("gl_account") or invoice.get("gl_account") or DEFAULT_GL.account
    return {
        "posting_id": reference(ctx, "GL"),
        "ledger": "simulated",
        "vendor": invoice.get("vendor"),
        "invoice_number": invoice.get("invoice_number"),
        "currency": invoice["currency"],
        "amount": amount,
        "entries": [
            {"account": gl_account, "side": "debit", "amount": amount},
            {"account": PAYABLES_ACCOUNT, "side": "credit", "amount": amount},
        ],
    }


@worker("invoice.reverse_posting")
def reverse_posting(ctx: StepContext) -> Output:
    """Compensate invoice.post: reverse the posting it made (simulated ledger)."""
    undone = ctx.compensating or {}
    posting_id = undone.get("posting_id")
    if not isinstance(posting_id, str) or not posting_id:
        raise PermanentError("compensating.posting_id is missing: there is no posting to reverse")
    entries = [
        {**thaw(entry), "side": "credit" if entry.get("side") == "debit" else "debit"}
        for entry in undone.get("entries") or ()
        if isinstance(entry, Mapping)
    ]
    return {
        "reversed_posting_id": posting_id,
        "reversal_id": reference(ctx, "GLR"),
        "ledger": "simulated",
        "entries": entries,
    }

"""KYC screening workers: normalise the subject, screen it, open (and close) the account.

Pure functions of their StepContext: no clock, no network, no randomness. Screening
runs against the bundled fictional list in `watchlist.py`; the core banking system is
simulated, its references derived from the step's idempotency key.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping
from difflib import SequenceMatcher
from functools import cache
from typing import Any

from orchestration.handlers import watchlist
from orchestration.handlers.common import (
    latest_output,
    optional_str,
    reference,
    required_str,
    thaw,
)
from orchestration.workers import Output, PermanentError, StepContext, worker

HIT_THRESHOLD = 0.85
MATCH_FLOOR = 0.6  # weaker resemblances are not worth a reviewer's attention
MAX_MATCHES = 5
CORE_BANKING_TOKEN = "CORE_BANKING_TOKEN"  # noqa: S105  (the variable's name, not a secret)

# Dropped from the end of a name (repeatedly), never when nothing else would remain.
LEGAL_SUFFIXES = frozenset(
    {
        "ag",
        "bv",
        "co",
        "company",
        "corp",
        "corporation",
        "gmbh",
        "inc",
        "incorporated",
        "kg",
        "limited",
        "llc",
        "ltd",
        "mbh",
        "nv",
        "plc",
        "sa",
        "sarl",
        "spa",
        "srl",
    }
)
# Letters that carry no combining mark to strip, spelled the way most registers do.
_FOLD = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "æ": "ae", "œ": "oe", "þ": "th"})
_JOINED = re.compile(r"[.'\u2019]")  # "S.A." is "SA", "O'Brien" is "OBrien"
_SEPARATOR = re.compile(r"[^\w]+|_")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def normalize_name(name: str) -> str:
    """Casefolded, accent-free, single-spaced name without trailing legal suffixes.

    "  Zorblax Trading  GmbH & Co. KG" -> "zorblax trading"; "Jörg Übermoor" -> "jorg ubermoor".
    """
    folded = unicodedata.normalize("NFKD", name.casefold())
    plain = "".join(c for c in folded if not unicodedata.combining(c)).translate(_FOLD)
    tokens = _SEPARATOR.sub(" ", _JOINED.sub("", plain)).split()
    while len(tokens) > 1 and tokens[-1] in LEGAL_SUFFIXES:
        tokens.pop()
    return " ".join(tokens)


def _subject_from(payload: Mapping[str, Any]) -> dict[str, Any]:
    display = " ".join(required_str(payload, "name").split())
    name = normalize_name(display)
    if not name:
        raise PermanentError(f"payload.name has no letters or digits: {display!r}")
    country = required_str(payload, "country").upper()
    if not _COUNTRY.match(country):
        raise PermanentError(f"payload.country is not an ISO 3166 alpha-2 code: {country!r}")
    born = optional_str(payload, "date_of_birth")
    if born is not None:
        if not _ISO_DATE.match(born):
            raise PermanentError(f"payload.date_of_birth is not an ISO date (YYYY-MM-DD): {born!r}")
        try:
            born = dt.date.fromisoformat(born).isoformat()
        except ValueError:
            raise PermanentError(f"payload.date_of_birth is not a real date: {born!r}") from None
    return {"name": name, "display_name": display, "country": country, "date_of_birth": born}


def _subject(ctx: StepContext) -> dict[str, Any]:
    """The subject an earlier normalize step produced, or the payload normalised here."""
    earlier = latest_output(ctx, "subject")
    if earlier is not None and isinstance(earlier["subject"], Mapping):
        return dict(thaw(earlier["subject"]))
    return _subject_from(ctx.payload)


@worker("kyc.normalize")
def normalize(ctx: StepContext) -> Output:
    """Normalise the subject: name for matching, country code, date of birth.

    PermanentError when payload.name or payload.country is missing, the country is not
    two letters, or payload.date_of_birth is not a real ISO date (e.g. 2001-02-30).
    """
    subject = _subject_from(ctx.payload)
    proposed = {
        "name": subject["display_name"],
        "country": subject["country"],
    }
    if subject["date_of_birth"] is not None:
        proposed["date_of_birth"] = subject["date_of_birth"]
    return {"subject": subject, "proposed": proposed}


def _sorted_tokens(name: str) -> str:
    return " ".join(sorted(set(name.split())))


def similarity(a: str, b: str) -> float:
    """Token-set similarity of two normalised names in [0, 1]; word order does not matter."""
    if a == b:
        return 1.0
    return SequenceMatcher(None, _sorted_tokens(a), _sorted_tokens(b)).ratio()


@cache
def _listed() -> tuple[tuple[watchlist.Entry, tuple[tuple[str, str, bool], ...]], ...]:
    """Each entry with its (original, normalised, is_alias) names, normalised once."""
    return tuple(
        (
            entry,
            tuple(
                (spelling, normalize_name(spelling), is_alias)
                for spelling, is_alias in [(entry.name, False)] + [(a, True) for a in entry.aliases]
            ),
        )
        for entry in watchlist.ENTRIES
    )


def screen_name(name: str, country: str | None = None) -> list[dict[str, Any]]:
    """Watch-list entries resembling `name`, best first, each with its score and why."""
    matches: list[dict[str, Any]] = []
    for entry, spellings in _listed():
        score, spelling, is_alias, same = max(
            (
                (round(similarity(name, norm), 3), original, alias, name == norm)
                for original, norm, alias in spellings
            ),
            key=lambda s: (s[0], s[3], not s[2]),
        )
        if score < MATCH_FLOOR:
            continue
        on = f"alias {spelling!r}" if is_alias else f"listed name {spelling!r}"
        if same:
            reason = f"exact match on {on}"
        elif score == 1.0:
            reason = f"the words of {on}, in another order"
        else:
            reason = f"similar to {on} ({score:.3f})"
        if country and country == entry.country:
            reason += f"; same country ({country})"
        matches.append(
            {
                "entry_id": entry.id,
                "name": entry.name,
                "matched_on": spelling,
                "alias": is_alias,
                "country": entry.country,
                "score": score,
                "reason": reason,
            }
        )
    matches.sort(key=lambda m: (-m["score"], m["entry_id"]))
    return matches[:MAX_MATCHES]


@worker("kyc.screen", outcomes=("clear", "hit"))
def screen(ctx: StepContext) -> Output:
    """Screen the subject's name against the bundled watch list.

    Each entry's name and aliases are normalised like the subject's and compared by
    token-set similarity (difflib ratio of the sorted tokens; identical normalised
    names score 1.0). Outcome "hit" when the best score is at least HIT_THRESHOLD
    (0.85), "clear" otherwise; matches below MATCH_FLOOR (0.6) are not reported.

    Confidence is 1 - best score: how sure the machine is that the subject is *not*
    the listed party, i.e. that letting the case through is right. An exact hit has
    confidence 0.0, so a review gate can never wave it through automatically; a clear
    result with no resemblance at all has confidence 1.0.
    """
    subject = _subject(ctx)
    matches = screen_name(subject["name"], subject.get("country"))
    best = matches[0] if matches else None
    best_score = best["score"] if best else 0.0
    hit = best_score >= HIT_THRESHOLD
    suggestions: list[dict[str, Any]] = []
    if best is not None and best_score == 1.0:
        suggestions.append(
            {"action": "reject", "reason": f"{best['entry_id']} {best['name']}: {best['reason']}"}
        )
    elif not hit:
        suggestions.append(
            {
                "action": "approve",
                "reason": f"no watch-list entry scores {HIT_THRESHOLD} or more "
                f"(best: {best_score:.3f})",
            }
        )
    return {
        "outcome": "hit" if hit else "clear",
        "matches": matches,
        "best_score": best_score,
        "confidence": round(1.0 - best_score, 3),
        "proposed": {
            "screening": "hit" if hit else "clear",
            "screening_match": best["entry_id"] if hit and best else None,
        },
        "suggestions": suggestions,
        "watchlist": {"name": watchlist.LIST_NAME, "version": watchlist.LIST_VERSION},
    }


def _core_banking(ctx: StepContext) -> str:
    # The demo never calls out; with a token configured it records that a real
    # integration would have authenticated. The token itself never reaches the output.
    token = ctx.credentials.get(CORE_BANKING_TOKEN)
    return "simulated" if token is None else "authenticated"


@worker("kyc.open_account", credentials=(CORE_BANKING_TOKEN,))
def open_account(ctx: StepContext) -> Output:
    """Open the customer account in the (simulated) core banking system.

    The account reference derives from the idempotency key, so a redelivered step run
    opens nothing twice.
    """
    subject = _subject(ctx)
    return {
        "account_ref": reference(ctx, "ACC"),
        "core_banking": _core_banking(ctx),
        "holder": subject["display_name"],
        "country": subject["country"],
    }


@worker("kyc.close_account", credentials=(CORE_BANKING_TOKEN,))
def close_account(ctx: StepContext) -> Output:
    """Compensate kyc.open_account: close the account it opened."""
    undone = ctx.compensating or {}
    account_ref = undone.get("account_ref")
    if not isinstance(account_ref, str) or not account_ref:
        raise PermanentError("compensating.account_ref is missing: there is no account to close")
    return {"closed_account_ref": account_ref, "core_banking": _core_banking(ctx)}

"""Content moderation workers: classify a text by rules, apply the decision, revert it.

Pure functions of their StepContext: no clock, no network, no randomness. The
moderation platform is simulated; its references derive from the idempotency key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestration.handlers.common import latest_output, reference, required_str
from orchestration.workers import Output, PermanentError, StepContext, worker

CLASSIFIER = "moderation.rules/1"
LABEL_THRESHOLD = 0.5
# Which action each label asks for; on equal scores the earlier label wins.
ACTIONS = {"abuse": "remove", "spam": "remove", "personal_data": "redact", "safe": "keep"}
APPLICABLE = ("keep", "redact", "remove")

# Mild placeholder insults: enough to exercise the rules, nothing worse.
ABUSIVE_WORDS = (
    "bozo",
    "buffoon",
    "clown",
    "dimwit",
    "dumb",
    "idiot",
    "jerk",
    "loser",
    "moron",
    "nitwit",
    "stupid",
)
SPAM_PHRASES = (
    "act now",
    "buy now",
    "click here",
    "crypto giveaway",
    "double your money",
    "free money",
    "limited offer",
    "work from home",
    "you have won",
)
_URL = re.compile(r"\bhttps?://[^\s<>\"]+|\bwww\.[^\s<>\"]+", re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
# Nine or more digits, optionally grouped by spaces, dots, dashes or brackets.
_PHONE = re.compile(r"(?<![\w+])\+?\d(?:[\s().-]?\d){8,14}(?!\w)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b")
_INSULT = "|".join(ABUSIVE_WORDS)
_ABUSE = re.compile(rf"\b({_INSULT})s?\b", re.IGNORECASE)
_AIMED = re.compile(rf"\byou(?:'re| are)?\s+(?:such\s+)?(?:an?\s+)?(?:{_INSULT})\b", re.IGNORECASE)
_SHOUTING_MIN_LETTERS = 12
_SHOUTING_RATIO = 0.7


@dataclass(frozen=True)
class Signal:
    label: str
    rule: str
    weight: float
    detail: str


def _signals(text: str) -> list[Signal]:
    """Every rule that fired on the text, with the weight it adds to its label."""
    signals: list[Signal] = []
    folded = text.casefold()

    urls = _URL.findall(text)
    if urls:
        weight = min(0.7, 0.35 * len(urls))
        signals.append(Signal("spam", "links", weight, f"{len(urls)} link(s)"))
    phrases = [p for p in SPAM_PHRASES if p in folded]
    if phrases:
        weight = min(0.6, 0.3 * len(phrases))
        signals.append(Signal("spam", "phrases", weight, ", ".join(repr(p) for p in phrases)))
    letters = [c for c in text if c.isalpha()]
    upper = sum(1 for c in letters if c.isupper())
    shouting = len(letters) >= _SHOUTING_MIN_LETTERS and upper / len(letters) >= _SHOUTING_RATIO
    if shouting:
        share = f"{upper / len(letters):.0%} capitals"
        signals.append(Signal("spam", "shouting", 0.2, share))
    if "!!!" in text:
        signals.append(Signal("spam", "exclamations", 0.1, "'!!!'"))

    words = sorted({m.casefold() for m in _ABUSE.findall(text)})
    if words:
        weight = min(0.9, 0.6 + 0.15 * (len(words) - 1))
        signals.append(Signal("abuse", "insults", weight, ", ".join(repr(w) for w in words)))
        if _AIMED.search(text):
            signals.append(Signal("abuse", "aimed at a person", 0.15, "'you ...'"))
        if shouting:
            signals.append(Signal("abuse", "shouting", 0.1, "insults in capitals"))

    emails = _EMAIL.findall(text)
    if emails:
        signals.append(Signal("personal_data", "e-mail", 0.8, f"{len(emails)} e-mail address(es)"))
    phones = _PHONE.findall(_IBAN.sub(" ", text))  # an IBAN's digits are no phone number
    if phones:
        signals.append(Signal("personal_data", "phone", 0.7, f"{len(phones)} phone number(s)"))
    ibans = _IBAN.findall(text)
    if ibans:
        signals.append(Signal("personal_data", "iban", 0.8, f"{len(ibans)} IBAN(s)"))
    return signals


def _scores(signals: list[Signal]) -> dict[str, float]:
    """Per label, its signals combined as independent evidence: 1 - prod(1 - weight)."""
    scores = {}
    for label in ("abuse", "spam", "personal_data"):
        doubt = 1.0
        for signal in signals:
            if signal.label == label:
                doubt *= 1.0 - signal.weight
        scores[label] = round(min(0.99, 1.0 - doubt), 3)
    return scores


def redact(text: str) -> str:
    """The text with e-mail addresses, IBANs and phone numbers replaced by placeholders."""
    text = _EMAIL.sub("[e-mail]", text)
    text = _IBAN.sub("[iban]", text)
    return _PHONE.sub("[phone]", text)


@worker("moderation.classify")
def classify(ctx: StepContext) -> Output:
    """Label payload.text as abuse, spam, personal_data or safe, and propose an action.

    Rules: links, spam phrases, shouting (mostly capitals) and '!!!' speak for spam;
    words from ABUSIVE_WORDS (more so when aimed at "you") for abuse; e-mail
    addresses, phone numbers and IBANs for personal data. A label applies when its
    score reaches 0.5; the top one picks the action (remove, remove, redact; keep when
    none applies).

    Confidence: the top label's score (signals combined as 1 - prod(1 - weight), capped
    at 0.99); for "safe", 0.95 less the strongest sub-threshold score, at least 0.5.
    """
    text = required_str(ctx.payload, "text")
    signals = _signals(text)
    scores = _scores(signals)
    labels = sorted(
        (label for label, score in scores.items() if score >= LABEL_THRESHOLD),
        key=lambda label: (-scores[label], list(ACTIONS).index(label)),
    )
    label = labels[0] if labels else "safe"
    action = ACTIONS[label]
    strongest = max(scores.values())
    confidence = scores[label] if labels else round(max(0.5, 0.95 - strongest), 3)

    if labels:
        because = "; ".join(f"{s.rule}: {s.detail}" for s in signals if s.label == label)
        reason = f"{label} ({because})"
    elif signals:
        weak = "; ".join(f"{s.rule}: {s.detail}" for s in signals)
        reason = f"no label reaches {LABEL_THRESHOLD} (weak signals: {weak})"
    else:
        reason = "no moderation rule fired"
    suggestions: list[dict[str, Any]] = [{"field": "action", "value": action, "reason": reason}]
    if action == "remove" and "personal_data" in labels:
        suggestions.append(
            {
                "field": "action",
                "value": "redact",
                "reason": "it also holds personal data: redact it if the rest may stay",
            }
        )
    output: dict[str, Any] = {
        "classifier": CLASSIFIER,
        "labels": labels or ["safe"],
        "scores": scores,
        "signals": [
            {"label": s.label, "rule": s.rule, "weight": s.weight, "detail": s.detail}
            for s in signals
        ],
        "proposed": {"label": label, "action": action},
        "confidence": confidence,
        "suggestions": suggestions,
    }
    if "personal_data" in labels:
        output["redacted_text"] = redact(text)
    return output


@worker("moderation.apply")
def apply(ctx: StepContext) -> Output:
    """Apply the proposed action on the (simulated) platform.

    The case's current proposal (a moderator's edit) wins over the classifier's, read
    from the latest moderation.classify output; the reference derives from the
    idempotency key, so a redelivered step run applies nothing twice.
    """
    classified = latest_output(ctx, "classifier")
    if classified is None:
        raise PermanentError("outputs has no moderation.classify output: nothing to apply")
    proposed = classified.get("proposed")
    if not isinstance(proposed, Mapping) or proposed.get("action") not in APPLICABLE:
        found = proposed.get("action") if isinstance(proposed, Mapping) else None
        raise PermanentError(
            f"outputs.proposed.action is not one of {', '.join(APPLICABLE)}: {found!r}"
        )
    edited = ctx.proposed.get("action")
    action = edited if edited in APPLICABLE else proposed["action"]
    output: dict[str, Any] = {
        "applied": action,
        "label": proposed.get("label"),
        "ref": reference(ctx, "MOD"),
        "platform": "simulated",
    }
    if action == "redact" and isinstance(classified.get("redacted_text"), str):
        output["published_text"] = classified["redacted_text"]
    return output


@worker("moderation.revert")
def revert(ctx: StepContext) -> Output:
    """Compensate moderation.apply: restore the content as it was before the action."""
    undone = ctx.compensating or {}
    ref = undone.get("ref")
    if not isinstance(ref, str) or not ref:
        raise PermanentError("compensating.ref is missing: there is no moderation action to revert")
    return {
        "reverted_ref": ref,
        "reverted_action": undone.get("applied"),
        "restored": "original",
        "platform": "simulated",
    }

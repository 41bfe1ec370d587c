"""The demo worker handlers, called directly with hand-built contexts (no database)."""

import json
from typing import Any

import pytest

import orchestration.handlers  # noqa: F401  (registers the demo handlers)
from orchestration import workers
from orchestration.handlers import kyc
from orchestration.workers import (
    PermanentError,
    StepContext,
    UndeclaredCredential,
    get_handler,
    worker,
)

KEY = "0123456789abcdef"


def context(
    handler: str,
    payload: dict[str, Any] | None = None,
    *,
    outputs: dict[str, Any] | None = None,
    compensating: dict[str, Any] | None = None,
    proposed: dict[str, Any] | None = None,
    key: str = KEY,
) -> StepContext:
    return StepContext.build(
        case_id="c1",
        step_id="s",
        handler=handler,
        payload=payload or {},
        outputs=outputs or {},
        correlation_id="corr",
        attempt=1,
        idempotency_key=key,
        proposed=proposed,
        compensating=compensating,
    )


def run(handler: str, payload: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    return get_handler(handler).func(context(handler, payload, **kwargs))


ACME = {"vendor": "ACME GmbH", "amount": "1200.00", "currency": "EUR", "vat_id": "DE123456789"}
HOTEL_TEXT = """Grand Hotel Alpenblick, Innsbruck
Invoice No: HB-2026/117
Date: 14.03.2026
VAT ID: ATU12345678
Room, 3 nights   540.00
Total: EUR 612.50
"""


# invoice.extract


def test_extract_normalises_vendor_amount_and_currency():
    out = run(
        "invoice.extract", {"vendor": "  ACME   GmbH ", "amount": "1,200.5", "currency": "eur"}
    )
    assert out["invoice"]["vendor"] == "ACME GmbH"
    assert out["invoice"]["amount"] == "1200.50"
    assert out["invoice"]["currency"] == "EUR"
    assert "outcome" not in out  # "ok" is the only outcome, so it is left out


def test_extract_proposes_the_travel_account_for_a_hotel_invoice():
    out = run(
        "invoice.extract", {"vendor": "Grand Hotel Alpenblick", "amount": 612.5, "currency": "EUR"}
    )
    assert out["proposed"]["gl_account"] == "6650"
    assert out["suggestions"][0]["field"] == "gl_account"
    assert "'hotel'" in out["suggestions"][0]["reason"]


def test_extract_proposes_the_hosting_account_for_a_cloud_vendor():
    out = run(
        "invoice.extract", {"vendor": "Nimbus Cloud Hosting Ltd", "amount": "89", "currency": "USD"}
    )
    assert out["proposed"]["gl_account"] == "6815"
    assert out["rule"]["keywords"] == ["cloud", "hosting"]


def test_extract_reads_line_descriptions_when_choosing_the_account():
    payload = {**ACME, "lines": [{"description": "Toner and printer paper", "amount": "1200.00"}]}
    assert run("invoice.extract", payload)["proposed"]["gl_account"] == "6800"


def test_extract_falls_back_to_the_default_account_with_lower_confidence():
    matched = run("invoice.extract", {**ACME, "vendor": "ACME Office Supplies"})
    default = run("invoice.extract", ACME)
    assert default["proposed"]["gl_account"] == "6100"
    assert "default account" in default["suggestions"][0]["reason"]
    assert default["confidence"] < matched["confidence"]


def test_extract_reads_missing_fields_from_the_invoice_text():
    out = run("invoice.extract", {"vendor": "Grand Hotel Alpenblick", "text": HOTEL_TEXT})
    assert out["proposed"] == {
        "vendor": "Grand Hotel Alpenblick",
        "amount": "612.50",
        "currency": "EUR",
        "invoice_number": "HB-2026/117",
        "invoice_date": "2026-03-14",
        "vat_id": "ATU12345678",
        "gl_account": "6650",
    }
    assert out["found_in"]["amount"] == "text"
    assert out["confidence"] == 0.95
    suggested = {s["field"] for s in out["suggestions"]}
    assert {"amount", "invoice_number", "invoice_date", "vat_id"} <= suggested


def test_extract_prefers_the_payload_and_suggests_the_text_total_when_they_disagree():
    agreeing = run("invoice.extract", {"vendor": "Hotel", "amount": "612.50", "text": HOTEL_TEXT})
    out = run("invoice.extract", {"vendor": "Hotel", "amount": "621.50", "text": HOTEL_TEXT})
    assert out["invoice"]["amount"] == "621.50"
    assert {"field": "amount", "value": "612.50"}.items() <= out["suggestions"][1].items()
    assert out["confidence"] == pytest.approx(agreeing["confidence"] - 0.2)


def test_extract_skips_an_impossible_date_in_the_text():
    text = "Invoice no. 7781\nDelivered 2026-02-30, invoiced 2026-03-02\nTotal: 10.00"
    out = run("invoice.extract", {"vendor": "ACME", "currency": "EUR", "text": text})
    assert out["invoice"]["invoice_date"] == "2026-03-02"
    assert out["invoice"]["invoice_number"] == "7781"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({**ACME, "amount": "abc"}, "payload.amount is not a decimal number: 'abc'"),
        ({**ACME, "amount": True}, "payload.amount is not a decimal number: True"),
        ({**ACME, "amount": "NaN"}, "payload.amount is not a finite number: 'NaN'"),
        ({"vendor": "ACME", "currency": "EUR"}, "payload.amount is missing"),
        ({**ACME, "currency": "XYZ"}, "payload.currency is not an accepted ISO 4217 code: 'XYZ'"),
        ({"vendor": "ACME", "amount": "1"}, "payload.currency is missing"),
        ({"amount": "1", "currency": "EUR"}, "payload.vendor is missing"),
        ({**ACME, "vendor": "   "}, "payload.vendor is empty"),
        ({**ACME, "invoice_date": "14.03.2026"}, "payload.invoice_date is not an ISO date"),
        (
            {**ACME, "lines": [{"amount": "1"}, {"description": "x"}]},
            "payload.lines[1].amount is missing",
        ),
        ({**ACME, "lines": "many"}, "payload.lines is not a list: 'many'"),
    ],
)
def test_extract_refuses_input_that_can_never_work_and_names_the_field(payload, message):
    with pytest.raises(PermanentError) as excinfo:
        run("invoice.extract", payload)
    assert str(excinfo.value).startswith(message)


# invoice.validate


def test_validate_passes_a_clean_invoice_with_the_extract_confidence():
    extracted = run("invoice.extract", {**ACME, "vendor": "ACME Cloud", "invoice_number": "A-1"})
    out = run("invoice.validate", ACME, outputs={"extract": extracted})
    assert out["outcome"] == "ok"
    assert out["findings"] == []
    assert out["confidence"] == extracted["confidence"]
    assert out["suggestions"] == [
        {"action": "approve", "reason": "amount, currency and VAT id passed every check"}
    ]


def test_validate_flags_an_amount_above_the_threshold_but_not_at_it():
    at = run("invoice.validate", {**ACME, "amount": "10000.00"})
    above = run("invoice.validate", {**ACME, "amount": "10000.01"})
    assert at["outcome"] == "ok"
    assert above["outcome"] == "flagged"
    assert [f["code"] for f in above["findings"]] == ["amount_above_threshold"]
    assert "10000.01 EUR is above" in above["findings"][0]["message"]


def test_validate_flags_a_missing_vat_id_for_an_eu_currency_only():
    eur = run("invoice.validate", {"vendor": "ACME", "amount": "10", "currency": "EUR"})
    usd = run("invoice.validate", {"vendor": "ACME", "amount": "10", "currency": "USD"})
    assert eur["outcome"] == "flagged"
    assert [f["code"] for f in eur["findings"]] == ["vat_id_missing"]
    assert usd["outcome"] == "ok"


@pytest.mark.parametrize(
    "vat_id", ["DE 123 456 789", "ATU12345678", "NL123456789B01", "fr12345678901"]
)
def test_validate_accepts_well_formed_vat_ids(vat_id):
    assert run("invoice.validate", {**ACME, "vat_id": vat_id})["outcome"] == "ok"


@pytest.mark.parametrize("vat_id", ["DE12345", "ATU1234567", "NL123456789C01", "IT123"])
def test_validate_flags_a_vat_id_that_does_not_fit_its_country(vat_id):
    out = run("invoice.validate", {**ACME, "vat_id": vat_id})
    assert out["outcome"] == "flagged"
    assert [f["code"] for f in out["findings"]] == ["vat_id_malformed"]


def test_validate_notes_but_does_not_flag_a_vat_id_of_an_unchecked_country():
    out = run("invoice.validate", {**ACME, "vat_id": "LU12345678"})
    assert out["outcome"] == "ok"
    assert [(f["code"], f["severity"]) for f in out["findings"]] == [("vat_id_unchecked", "info")]


def test_validate_flags_lines_that_do_not_add_up_and_suggests_their_sum():
    lines = [{"description": "a", "amount": "700"}, {"description": "b", "amount": "499.99"}]
    out = run("invoice.validate", {**ACME, "lines": lines})
    assert out["outcome"] == "flagged"
    assert [f["code"] for f in out["findings"]] == ["lines_total_mismatch"]
    assert out["suggestions"] == [
        {"field": "amount", "value": "1199.99", "reason": "the sum of the invoice lines"}
    ]


def test_validate_lowers_confidence_more_with_every_flag():
    extracted = {"invoice": {}, "confidence": 0.9}
    one = {**ACME, "amount": "20000"}
    two = {"vendor": "ACME", "amount": "20000", "currency": "EUR"}
    clean = run("invoice.validate", ACME, outputs={"x": {**extracted, "invoice": ACME}})
    once = run("invoice.validate", one, outputs={"x": {**extracted, "invoice": one}})
    twice = run("invoice.validate", two, outputs={"x": {**extracted, "invoice": two}})
    assert (clean["confidence"], once["confidence"], twice["confidence"]) == (0.9, 0.45, 0.35)


def test_validate_reads_the_invoice_of_the_extract_step_not_the_raw_payload():
    extracted = run("invoice.extract", {"vendor": "ACME", "text": HOTEL_TEXT})
    out = run("invoice.validate", {"vendor": "ACME"}, outputs={"extract": extracted})
    assert out["outcome"] == "ok"


@pytest.mark.parametrize("amount", ["0", "-12.50"])
def test_validate_refuses_an_amount_that_is_not_above_zero(amount):
    with pytest.raises(PermanentError, match=r"^payload\.amount must be greater than zero"):
        run("invoice.validate", {**ACME, "amount": amount})


# invoice.post and invoice.reverse_posting


def test_post_derives_the_posting_id_from_the_idempotency_key():
    first = run("invoice.post", ACME)
    again = run("invoice.post", ACME)
    other = run("invoice.post", ACME, key="fedcba9876543210")
    assert first["posting_id"] == again["posting_id"] == "GL-01234567"
    assert other["posting_id"] == "GL-fedcba98"


def test_post_books_the_proposed_account_against_payables():
    extracted = run("invoice.extract", {"vendor": "Grand Hotel", "text": HOTEL_TEXT})
    out = run("invoice.post", {}, outputs={"extract": extracted, "validate": {"outcome": "ok"}})
    assert out["entries"] == [
        {"account": "6650", "side": "debit", "amount": "612.50"},
        {"account": "1600", "side": "credit", "amount": "612.50"},
    ]


def test_post_books_the_account_a_reviewer_chose_over_the_extracted_one():
    extracted = run("invoice.extract", {"vendor": "Grand Hotel", "text": HOTEL_TEXT})
    out = run(
        "invoice.post",
        {},
        outputs={"extract": extracted, "validate": {"outcome": "ok"}},
        proposed={"gl_account": "6800"},
    )
    assert out["entries"][0] == {"account": "6800", "side": "debit", "amount": "612.50"}


def test_post_refuses_to_run_without_an_idempotency_key():
    with pytest.raises(PermanentError, match="idempotency_key is empty"):
        run("invoice.post", ACME, key="")


def test_reverse_posting_reverses_the_posting_it_compensates():
    posted = run("invoice.post", ACME)
    out = run("invoice.reverse_posting", compensating=posted, key="9999aaaabbbbcccc")
    assert out["reversed_posting_id"] == "GL-01234567"
    assert out["reversal_id"] == "GLR-9999aaaa"
    assert [e["side"] for e in out["entries"]] == ["credit", "debit"]


@pytest.mark.parametrize("compensating", [None, {}, {"posting_id": ""}])
def test_reverse_posting_refuses_when_there_is_no_posting_to_reverse(compensating):
    with pytest.raises(PermanentError, match=r"^compensating\.posting_id is missing"):
        run("invoice.reverse_posting", compensating=compensating)


# kyc.normalize


def test_normalize_strips_case_accents_whitespace_and_legal_suffixes():
    out = run("kyc.normalize", {"name": "  Zörblax   Trading GmbH & Co. KG ", "country": "de"})
    assert out["subject"]["name"] == "zorblax trading"
    assert out["subject"]["country"] == "DE"
    assert out["proposed"] == {"name": "Zörblax Trading GmbH & Co. KG", "country": "DE"}


@pytest.mark.parametrize(
    ("name", "normalised"),
    [
        ("Jörg Übermoor", "jorg ubermoor"),
        ("Łukasz Ørsted", "lukasz orsted"),
        ("Ravensgate Bullion S.A.", "ravensgate bullion"),
        ("O'Brien Ltd", "obrien"),
        ("Inc", "inc"),  # a suffix alone is the whole name, so it stays
    ],
)
def test_normalize_name(name, normalised):
    assert kyc.normalize_name(name) == normalised


def test_normalize_keeps_a_real_date_of_birth():
    out = run("kyc.normalize", {"name": "Anna", "country": "AT", "date_of_birth": "2000-02-29"})
    assert out["subject"]["date_of_birth"] == "2000-02-29"
    assert out["proposed"]["date_of_birth"] == "2000-02-29"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"name": "A", "country": "AT", "date_of_birth": "2001-02-29"},
            "payload.date_of_birth is not a real date: '2001-02-29'",
        ),
        (
            {"name": "A", "country": "AT", "date_of_birth": "01/02/2001"},
            "payload.date_of_birth is not an ISO date",
        ),
        (
            {"name": "A", "country": "Austria"},
            "payload.country is not an ISO 3166 alpha-2 code: 'AUSTRIA'",
        ),
        ({"name": "A"}, "payload.country is missing"),
        ({"country": "AT"}, "payload.name is missing"),
        ({"name": "-- !", "country": "AT"}, "payload.name has no letters or digits"),
        ({"name": 42, "country": "AT"}, "payload.name is not a string: 42"),
    ],
)
def test_normalize_refuses_input_that_can_never_work_and_names_the_field(payload, message):
    with pytest.raises(PermanentError) as excinfo:
        run("kyc.normalize", payload)
    assert str(excinfo.value).startswith(message)


# kyc.screen


def screen(name: str, country: str = "DE") -> dict[str, Any]:
    subject = run("kyc.normalize", {"name": name, "country": country})
    return run("kyc.screen", {"name": name, "country": country}, outputs={"normalize": subject})


def test_screen_hits_an_exact_alias_match_with_no_confidence():
    out = screen("Joerg Uebermoor")
    assert out["outcome"] == "hit"
    assert out["matches"][0]["entry_id"] == "WL-025"
    assert out["matches"][0]["alias"] is True
    assert (
        out["matches"][0]["reason"] == "exact match on alias 'Joerg Uebermoor'; same country (DE)"
    )
    assert out["confidence"] == 0.0
    assert out["suggestions"][0]["action"] == "reject"
    assert out["proposed"] == {"screening": "hit", "screening_match": "WL-025"}


def test_screen_ignores_word_order_accents_and_legal_suffixes():
    assert screen("VEXHOLLOW, Orlénna")["matches"][0]["score"] == 1.0
    assert screen("Zorblax Trading Ltd")["matches"][0]["entry_id"] == "WL-002"


def test_screen_clears_an_unlisted_name_with_full_confidence():
    out = screen("Anna Schmidt")
    assert out["outcome"] == "clear"
    assert out["matches"] == []
    assert out["confidence"] == 1.0
    assert out["suggestions"][0]["action"] == "approve"
    assert out["proposed"] == {"screening": "clear", "screening_match": None}


def test_screen_hits_a_close_misspelling_just_above_the_threshold():
    out = screen("Orlenna Vexhill")
    assert out["outcome"] == "hit"
    assert out["best_score"] == pytest.approx(0.875)
    assert out["confidence"] == pytest.approx(0.125)
    assert out["suggestions"] == []  # a fuzzy hit is for a person to judge


def test_screen_clears_a_resemblance_just_below_the_threshold_but_reports_it():
    out = screen("Octavian Gloom")
    assert out["outcome"] == "clear"
    assert out["best_score"] == pytest.approx(0.848)
    assert out["matches"][0]["entry_id"] == "WL-007"


@pytest.mark.parametrize(("score", "outcome"), [(0.85, "hit"), (0.849, "clear")])
def test_screen_threshold_is_inclusive(monkeypatch, score, outcome):
    monkeypatch.setattr(kyc, "similarity", lambda a, b: score)
    assert screen("Anybody")["outcome"] == outcome


def test_screen_uses_the_subject_of_the_normalize_step():
    subject = run("kyc.normalize", {"name": "Orlenna Vexhollow", "country": "FR"})
    out = run("kyc.screen", {"name": "Anna Schmidt", "country": "DE"}, outputs={"n": subject})
    assert out["outcome"] == "hit"


# kyc.open_account and kyc.close_account


def test_open_account_without_the_token_is_simulated(monkeypatch):
    monkeypatch.delenv("CORE_BANKING_TOKEN", raising=False)
    out = run("kyc.open_account", {"name": "Anna Schmidt", "country": "de"})
    assert out == {
        "account_ref": "ACC-01234567",
        "core_banking": "simulated",
        "holder": "Anna Schmidt",
        "country": "DE",
    }


def test_open_account_with_the_token_authenticates_and_never_echoes_it(monkeypatch):
    monkeypatch.setenv("CORE_BANKING_TOKEN", "tok-very-secret-1234")
    out = run("kyc.open_account", {"name": "Anna Schmidt", "country": "DE"})
    assert out["core_banking"] == "authenticated"
    assert out["account_ref"] == "ACC-01234567"
    assert "tok-very-secret-1234" not in json.dumps(out)


def test_close_account_closes_the_account_it_compensates(monkeypatch):
    monkeypatch.delenv("CORE_BANKING_TOKEN", raising=False)
    opened = run("kyc.open_account", {"name": "Anna", "country": "DE"})
    out = run("kyc.close_account", compensating=opened)
    assert out == {"closed_account_ref": "ACC-01234567", "core_banking": "simulated"}


def test_close_account_refuses_when_there_is_no_account_to_close():
    with pytest.raises(PermanentError, match=r"^compensating\.account_ref is missing"):
        run("kyc.close_account", compensating={"holder": "Anna"})


def test_a_handler_asking_for_an_undeclared_credential_is_refused(monkeypatch):
    # A private copy of the registry: the throwaway handler leaves no trace behind.
    monkeypatch.setattr(workers, "_registry", dict(workers._registry))
    monkeypatch.setenv("CORE_BANKING_TOKEN", "tok-very-secret-1234")

    @worker("test.greedy")
    def greedy(ctx: StepContext) -> dict[str, Any]:
        return {"stolen": ctx.credentials.get("CORE_BANKING_TOKEN")}

    with pytest.raises(UndeclaredCredential, match=r"'test\.greedy' asked for credential"):
        run("test.greedy")


def test_demo_handlers_declare_only_the_credentials_they_need():
    declared = {
        name: spec.credentials
        for name, spec in workers.registered().items()
        if name.split(".")[0] in ("invoice", "kyc", "moderation") and spec.credentials
    }
    assert declared == {
        "kyc.open_account": ("CORE_BANKING_TOKEN",),
        "kyc.close_account": ("CORE_BANKING_TOKEN",),
    }


# moderation.classify


def classify(text: str) -> dict[str, Any]:
    return run("moderation.classify", {"text": text})


def test_classify_keeps_a_harmless_text():
    out = classify("Lovely weather today, see you at the market.")
    assert out["labels"] == ["safe"]
    assert out["proposed"] == {"label": "safe", "action": "keep"}
    assert out["confidence"] == 0.95


def test_classify_removes_spam_with_links_and_sales_phrases():
    out = classify("BUY NOW!!! Click here http://deals.example and www.more-deals.example")
    assert out["proposed"] == {"label": "spam", "action": "remove"}
    assert out["confidence"] > 0.85
    assert "links: 2 link(s)" in out["suggestions"][0]["reason"]


def test_classify_keeps_a_single_link_but_says_why_it_looked():
    out = classify("The minutes are at https://example.org/minutes")
    assert out["proposed"]["action"] == "keep"
    assert out["confidence"] == pytest.approx(0.6)
    assert "weak signals: links" in out["suggestions"][0]["reason"]


def test_classify_removes_abuse_and_weighs_insults_aimed_at_someone_more():
    aimed = classify("You are such an idiot")
    general = classify("What an idiot idea")
    assert aimed["proposed"] == general["proposed"] == {"label": "abuse", "action": "remove"}
    assert aimed["confidence"] > general["confidence"]


def test_classify_redacts_personal_data():
    out = classify("Call me at +49 170 1234567 or write to jane.doe@example.org")
    assert out["proposed"] == {"label": "personal_data", "action": "redact"}
    assert out["redacted_text"] == "Call me at [phone] or write to [e-mail]"
    assert out["confidence"] == pytest.approx(0.94)


def test_classify_offers_redaction_when_spam_also_holds_personal_data():
    out = classify("Click here, buy now: https://a.example https://b.example, ask bob@example.org")
    assert out["proposed"]["action"] == "remove"
    assert {"field": "action", "value": "redact"}.items() <= out["suggestions"][1].items()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "payload.text is missing"),
        ({"text": None}, "payload.text is missing"),
        ({"text": "   "}, "payload.text is empty"),
        ({"text": ["hi"]}, "payload.text is not a string"),
    ],
)
def test_classify_refuses_a_missing_or_empty_text(payload, message):
    with pytest.raises(PermanentError) as excinfo:
        run("moderation.classify", payload)
    assert str(excinfo.value).startswith(message)


# moderation.apply and moderation.revert


def test_apply_applies_the_action_the_classifier_proposed():
    classified = classify("Call me at +49 170 1234567")
    out = run("moderation.apply", {"text": "x"}, outputs={"classify": classified, "review": {}})
    assert out["applied"] == "redact"
    assert out["ref"] == "MOD-01234567"
    assert out["published_text"] == "Call me at [phone]"


def test_apply_applies_the_action_a_moderator_chose_instead():
    classified = classify("Call me at +49 170 1234567")
    out = run(
        "moderation.apply",
        {"text": "x"},
        outputs={"classify": classified, "review": {}},
        proposed={"action": "remove"},
    )
    assert out["applied"] == "remove"


def test_apply_refuses_when_no_classification_came_before():
    with pytest.raises(PermanentError, match=r"^outputs has no moderation\.classify output"):
        run("moderation.apply", {"text": "x"}, outputs={"review": {"verdict": "approve"}})


def test_revert_undoes_the_applied_action():
    applied = run("moderation.apply", outputs={"classify": classify("You moron")})
    out = run("moderation.revert", compensating=applied)
    assert (out["reverted_ref"], out["reverted_action"]) == ("MOD-01234567", "remove")


def test_revert_refuses_when_there_is_nothing_to_revert():
    with pytest.raises(PermanentError, match=r"^compensating\.ref is missing"):
        run("moderation.revert", compensating={"applied": "remove"})


# Every handler


def _extracted() -> dict[str, Any]:
    return run("invoice.extract", {"vendor": "Hotel", "text": HOTEL_TEXT})


SAMPLES: dict[str, dict[str, Any]] = {
    "invoice.extract": {"payload": {"vendor": "Hotel", "text": HOTEL_TEXT}},
    "invoice.validate": {"payload": ACME},
    "invoice.post": {"payload": ACME},
    "invoice.reverse_posting": {
        "compensating": {"posting_id": "GL-01234567", "entries": [{"side": "debit"}]}
    },
    "kyc.normalize": {"payload": {"name": "Jörg Übermoor", "country": "DE"}},
    "kyc.screen": {"payload": {"name": "Orlenna Vexhill", "country": "FR"}},
    "kyc.open_account": {"payload": {"name": "Anna", "country": "DE"}},
    "kyc.close_account": {"compensating": {"account_ref": "ACC-01234567"}},
    "moderation.classify": {"payload": {"text": "Mail me: a@example.org!!! http://x.example"}},
    "moderation.apply": {
        "outputs": {"classify": {"classifier": "x", "proposed": {"action": "remove"}}}
    },
    "moderation.revert": {"compensating": {"ref": "MOD-01234567", "applied": "remove"}},
}


def test_every_demo_handler_has_a_sample():
    demo = {n for n in workers.registered() if n.split(".")[0] in ("invoice", "kyc", "moderation")}
    assert demo == set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_handler_gives_the_same_json_ready_output_for_the_same_input(name):
    first = run(name, **SAMPLES[name])
    second = run(name, **SAMPLES[name])
    assert first == second
    assert json.loads(json.dumps(first)) == first  # plain JSON: no tuples, no read-only views


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_handler_output_keeps_the_engine_conventions(name):
    out = run(name, **SAMPLES[name])
    spec = get_handler(name)
    assert out.get("outcome", "ok") in spec.outcomes
    if spec.outcomes == ("ok",):
        assert "outcome" not in out
    assert 0.0 <= out.get("confidence", 0.0) <= 1.0
    assert isinstance(out.get("proposed", {}), dict)
    for suggestion in out.get("suggestions", []):
        assert suggestion["reason"]
        assert ("field" in suggestion and "value" in suggestion) or suggestion["action"] in (
            "approve",
            "reject",
        )


def test_the_context_payload_is_read_only():
    ctx = context("invoice.extract", {**ACME, "lines": [{"description": "x", "amount": "1"}]})
    with pytest.raises(TypeError):
        ctx.payload["amount"] = "1.00"  # type: ignore[index]
    with pytest.raises(TypeError):
        ctx.payload["lines"][0]["amount"] = "2"
    with pytest.raises(TypeError):
        ctx.outputs["extract"] = {}  # type: ignore[index]

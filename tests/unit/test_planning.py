"""Freezing decisions: which audience rows become pending deliveries and why others are skipped."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from outreach_core.domain.mx import DomainResult, DomainStatus
from outreach_core.domain.planning import (
    PlannedDelivery,
    SenderIdentity,
    mark_suppressed,
    plan_deliveries,
    render_context,
)
from outreach_core.domain.states import DeliveryStatus
from outreach_core.domain.templating import CompiledTemplate, TemplateSource

SENDER = SenderIdentity(email="team@example.com", name="Team")
RUN_DATE = datetime(2024, 5, 6, 7, 8, tzinfo=UTC)
GREETING = CompiledTemplate(
    TemplateSource("Hello {{ name }}", "<p>Hello {{ name }}</p>", "Hello {{ name }}")
)


def plan(
    rows: list[dict[str, Any]], template: CompiledTemplate = GREETING
) -> list[PlannedDelivery]:
    """Plan rows numbered from 1, as the store numbers them."""
    return list(
        plan_deliveries(
            enumerate(rows, start=1),
            email_column="email",
            template=template,
            sender=SENDER,
            run_date=RUN_DATE,
        )
    )


def test_valid_row_becomes_pending_with_normalised_key() -> None:
    """Verify a valid row is pending, keyed by its lower-cased address, variables kept."""
    [planned] = plan([{"email": "  Ann@Example.COM ", "name": "Ann"}])
    assert planned.status is DeliveryStatus.PENDING
    assert planned.reason is None
    assert planned.key == "ann@example.com"
    assert planned.email == "Ann@example.com"
    assert planned.row_number == 1
    assert planned.variables == {"email": "  Ann@Example.COM ", "name": "Ann"}


@pytest.mark.parametrize(
    "row",
    [
        {"email": "", "name": "Blank"},
        {"email": "   ", "name": "Spaces"},
        {"email": None, "name": "None"},
        {"name": "No column"},
    ],
    ids=["empty", "spaces", "none", "absent"],
)
def test_row_without_email_is_skipped_as_invalid_syntax_no_email(row: dict[str, Any]) -> None:
    """Verify a row with no address is skipped as "invalid_syntax: no email" with no key."""
    [planned] = plan([row])
    assert planned.status is DeliveryStatus.SKIPPED
    assert planned.reason == "invalid_syntax: no email"
    assert planned.key is None


@pytest.mark.parametrize("raw", ["not-an-email", "a@@example.com", "ann@", "@example.com"])
def test_invalid_address_is_skipped_as_invalid_syntax(raw: str) -> None:
    """Verify a malformed address is skipped with invalid_syntax and the validator's message."""
    [planned] = plan([{"email": raw, "name": "X"}])
    assert planned.status is DeliveryStatus.SKIPPED
    assert planned.reason_word == "invalid_syntax"
    assert planned.reason and len(planned.reason) > len("invalid_syntax: ")
    assert planned.email == raw.strip()
    assert planned.key is None


def test_duplicates_are_case_insensitive_and_first_occurrence_wins() -> None:
    """Verify later rows with the same address in another case are skipped, naming the first row."""
    planned = plan(
        [
            {"email": "other@example.com", "name": "Other"},
            {"email": "ann@example.com", "name": "First"},
            {"email": "ANN@EXAMPLE.COM", "name": "Second"},
            {"email": "Ann@Example.Com", "name": "Third"},
        ]
    )
    assert [p.status for p in planned] == [
        DeliveryStatus.PENDING,
        DeliveryStatus.PENDING,
        DeliveryStatus.SKIPPED,
        DeliveryStatus.SKIPPED,
    ]
    assert planned[1].variables["name"] == "First"
    for duplicate in planned[2:]:
        assert duplicate.reason == "duplicate: same address as row 2"
        assert duplicate.key is None  # only the first occurrence holds the unique key


def test_idn_domain_in_unicode_and_ascii_forms_is_one_address() -> None:
    """Verify "José@Bücher.example" and "josé@xn--bcher-kva.example" are duplicates."""
    planned = plan(
        [
            {"email": "José@Bücher.example", "name": "Unicode"},
            {"email": "josé@xn--bcher-kva.example", "name": "Punycode"},
        ]
    )
    assert planned[0].status is DeliveryStatus.PENDING
    assert planned[0].key == "josé@xn--bcher-kva.example"
    assert planned[1].status is DeliveryStatus.SKIPPED
    assert planned[1].reason == "duplicate: same address as row 1"


def test_invalid_first_row_does_not_make_a_later_valid_row_a_duplicate() -> None:
    """Verify only valid addresses take part in de-duplication."""
    planned = plan(
        [{"email": "ann@", "name": "Broken"}, {"email": "ann@example.com", "name": "Good"}]
    )
    assert [p.status for p in planned] == [DeliveryStatus.SKIPPED, DeliveryStatus.PENDING]


def test_row_missing_a_variable_is_skipped_as_render_error_naming_it() -> None:
    """Verify a row lacking a template variable is skipped with render_error naming the variable."""
    planned = plan([{"email": "ann@example.com", "name": "Ann"}, {"email": "bob@example.com"}])
    assert planned[0].status is DeliveryStatus.PENDING
    assert planned[1].status is DeliveryStatus.SKIPPED
    assert planned[1].reason_word == "render_error"
    assert "'name' is undefined" in (planned[1].reason or "")
    assert planned[1].key == "bob@example.com"  # the address itself was fine


def test_duplicate_of_an_unrenderable_row_still_names_the_first_row() -> None:
    """Verify the first occurrence owns the address even when it cannot be rendered."""
    planned = plan([{"email": "bob@example.com"}, {"email": "BOB@example.com", "name": "Bob"}])
    assert planned[0].reason_word == "render_error"
    assert planned[1].reason == "duplicate: same address as row 1"


def test_built_in_variables_are_available_to_every_row() -> None:
    """Verify recipient.email, today and sender_name render without coming from the file."""
    template = CompiledTemplate(
        TemplateSource("For {{ recipient.email }} on {{ today }}", None, "From {{ sender_name }}")
    )
    [planned] = plan([{"email": "ann@example.com"}], template)
    assert planned.status is DeliveryStatus.PENDING
    context = render_context(
        {"name": "Ann"}, email="ann@example.com", sender=SENDER, run_date=RUN_DATE
    )
    assert template.render(context).subject == "For ann@example.com on 2024-05-06"
    assert context["sender_email"] == "team@example.com"


def test_row_variables_do_not_override_built_ins() -> None:
    """Verify the built-ins win over a column of the same name, so a file cannot spoof them."""
    context = render_context(
        {"today": "from the file", "recipient": "spoof"},
        email="ann@example.com",
        sender=SENDER,
        run_date=RUN_DATE,
    )
    assert context["today"] == "2024-05-06"
    assert context["recipient"] == {"email": "ann@example.com"}


def test_mark_suppressed_skips_pending_rows_on_the_list_only() -> None:
    """Verify suppressed pending rows become skipped naming the list's reason; others are untouched."""
    planned = plan(
        [
            {"email": "ann@example.com", "name": "Ann"},
            {"email": "bob@example.com", "name": "Bob"},
            {"email": "carl@example.com"},  # render error, also suppressed
            {"email": "not-an-email", "name": "X"},
        ]
    )
    marked = mark_suppressed(
        planned, {"bob@example.com": "unsubscribed", "carl@example.com": "bounced"}
    )
    assert [p.status for p in marked] == [
        DeliveryStatus.PENDING,
        DeliveryStatus.SKIPPED,
        DeliveryStatus.SKIPPED,
        DeliveryStatus.SKIPPED,
    ]
    assert marked[1].reason == "suppressed: on the suppression list (unsubscribed)"
    assert marked[2].reason_word == "render_error"  # the first reason stays
    assert marked[0] == planned[0]
    assert planned[1].status is DeliveryStatus.PENDING  # the input plan is not mutated


def test_mark_suppressed_with_empty_list_changes_nothing() -> None:
    """Verify an empty suppression list returns an equal plan."""
    planned = plan([{"email": "ann@example.com", "name": "Ann"}])
    assert mark_suppressed(planned, {}) == planned


def test_every_input_row_yields_exactly_one_planned_delivery() -> None:
    """Verify the invariant: one planned delivery per row, in order, none dropped, each decided."""
    rows: list[dict[str, Any]] = [
        {"email": "ann@example.com", "name": "Ann"},
        {"email": "", "name": "Missing"},
        {"email": "nope", "name": "Invalid"},
        {"email": "ANN@example.com", "name": "Duplicate"},
        {"email": "bob@example.com"},
        {"email": "José@Bücher.example", "name": "José"},
        {"email": "josé@xn--bcher-kva.example", "name": "José again"},
        {"email": "carl@example.com", "name": "Carl"},
    ]
    planned = mark_suppressed(plan(rows), {"carl@example.com": "manual"})
    assert [p.row_number for p in planned] == list(range(1, len(rows) + 1))
    assert [p.reason_word for p in planned] == [
        None,
        "invalid_syntax",
        "invalid_syntax",
        "duplicate",
        "render_error",
        None,
        "duplicate",
        "suppressed",
    ]
    for p in planned:
        assert (p.status is DeliveryStatus.PENDING) == (p.reason is None)
    pending_keys = [p.key for p in planned if p.status is DeliveryStatus.PENDING]
    assert len(pending_keys) == len(set(pending_keys))


def test_rows_on_undeliverable_domains_are_skipped_with_the_dns_verdict() -> None:
    """Verify the DNS step's verdicts skip rows (null_mx, no_domain); valid passes; a failed
    lookup (dns_error: unknown) leaves the row pending, waiting with the reason."""
    domains = {
        "ok.example": DomainResult("ok.example", DomainStatus.VALID, "mx.ok.example"),
        "null.example": DomainResult("null.example", DomainStatus.NULL_MX, None, "null MX"),
        "gone.example": DomainResult("gone.example", DomainStatus.NO_DOMAIN, None, "gone"),
        "slow.example": DomainResult("slow.example", DomainStatus.DNS_ERROR, None, "DNS timeout"),
    }
    rows = [{"email": f"a@{d}", "name": "A"} for d in domains]
    planned = list(
        plan_deliveries(
            enumerate(rows, start=1),
            email_column="email",
            template=CompiledTemplate(TemplateSource("Hi", None, "Hello {{ name }}")),
            sender=SenderIdentity("me@example.com", "Me"),
            run_date=datetime(2026, 1, 1, tzinfo=UTC),
            domains=domains,
        )
    )
    assert [(p.status, p.reason) for p in planned] == [
        (DeliveryStatus.PENDING, None),
        (DeliveryStatus.SKIPPED, "null_mx: null MX"),
        (DeliveryStatus.SKIPPED, "no_domain: gone"),
        (DeliveryStatus.PENDING, "dns_error: DNS timeout for slow.example"),
    ]

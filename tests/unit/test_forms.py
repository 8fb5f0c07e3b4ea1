"""The Workflows form's parsing: field by field, in plain words, with no database."""

from __future__ import annotations

from typing import Any

import pytest

from outreach_core.domain.forms import form_values, parse_workflow_form, split_addresses
from outreach_core.domain.models import RenderErrorPolicy, SendOptions
from outreach_core.domain.states import DnsWaitPolicy
from outreach_core.errors import FieldErrors


def values(**changes: Any) -> dict[str, Any]:
    """A filled-in form for a new workflow, with `changes` applied."""
    base = form_values(None) | {
        "name": "Weekly digest",
        "audience_id": 1,
        "template_id": 2,
        "engine_ids": [3, 4],
    }
    return base | changes


def test_defaults_parse_to_the_default_options_with_a_key_from_the_name() -> None:
    """Verify an untouched form gives SendOptions' defaults and no key (one is made later)."""
    draft, options = parse_workflow_form(values())
    assert draft.key is None
    assert draft.engine_ids == [3, 4]
    assert options == SendOptions()


def test_every_option_reaches_send_options() -> None:
    """Verify each option the form shows lands in its SendOptions field (percent -> share)."""
    _, options = parse_workflow_form(
        values(
            key="weekly-digest",
            skip_mx=True,
            dedupe_window_hours=6,
            on_render_error="abort",
            dns_wait_hours=6,
            on_dns_unanswered="skip",
            auto_pause_percent=35,
            time_limit_minutes=90,
            report_recipients="boss@example.com; Ops@Example.org ,",
            retry_ambiguous_once=True,
            retry_lifetime_hours=48,
            send_window=" 9:00 - 17:30 ",
            timezone="Europe/Paris",
            unsubscribe_mailto="unsub@example.com",
            unsubscribe_base_url="https://example.com/unsubscribe",
            rate=2.5,
            burst=3,
            concurrency=2,
        ),
        base=SendOptions(max_attempts=5),
    )
    assert options.auto_pause_failure_rate == pytest.approx(0.35)
    assert options.on_render_error is RenderErrorPolicy.ABORT
    assert (options.dns_wait_hours, options.on_dns_unanswered) == (6, DnsWaitPolicy.SKIP)
    assert options.report_recipients == ["boss@example.com", "Ops@example.org"]
    assert (options.time_limit_minutes, options.dedupe_window_hours) == (90, 6)
    assert (options.rate, options.burst, options.concurrency) == (2.5, 3, 2)
    assert options.retry_ambiguous_once and options.unsubscribe_mailto == "unsub@example.com"
    assert options.retry_lifetime_hours == 48
    assert (options.send_window, options.timezone) == ("09:00-17:30", "Europe/Paris")
    assert options.skip_mx
    assert options.max_attempts == 5  # not on the form: kept from the workflow


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"key": "Weekly Digest"}, "key", "lowercase letters, digits and dashes"),
        ({"report_recipients": "ok@example.com, bad@@x"}, "report_recipients", "'bad@@x'"),
        ({"engine_ids": []}, "engine_ids", "required"),
        ({"name": "  "}, "name", "required"),
        ({"audience_id": None}, "audience_id", "required"),
        ({"auto_pause_percent": 120}, "auto_pause_percent", "100 or less"),
        ({"dedupe_window_hours": -1}, "dedupe_window_hours", "0 or more"),
        ({"retry_lifetime_hours": 721}, "retry_lifetime_hours", "720 or less"),
        ({"concurrency": 0}, "concurrency", "1 or more"),
        ({"dns_wait_hours": 0}, "dns_wait_hours", "more than 0"),
        ({"on_dns_unanswered": "retry"}, "on_dns_unanswered", "choose one of"),
        ({"unsubscribe_mailto": "nobody"}, "unsubscribe_mailto", "'nobody'"),
        ({"unsubscribe_base_url": "ftp://x"}, "unsubscribe_base_url", "absolute https://"),
        (
            {"unsubscribe_base_url": "https://e.com/u>, <https://evil.example/x"},
            "unsubscribe_base_url",
            "'>' is not allowed",
        ),
    ],
)
def test_bad_values_are_named_by_field_in_plain_words(
    changes: dict[str, Any], field: str, words: str
) -> None:
    """Verify each bad value is reported against its own field, in words a user reads."""
    with pytest.raises(FieldErrors) as caught:
        parse_workflow_form(values(**changes))
    assert words in caught.value.errors[field]
    assert "Input should" not in caught.value.errors[field]


def test_blank_time_limit_means_none_and_addresses_split_on_commas() -> None:
    """Verify an empty time limit is "no limit" and the recipients text splits cleanly."""
    _, options = parse_workflow_form(values(time_limit_minutes=None))
    assert options.time_limit_minutes is None
    assert split_addresses(" a@x.org,, b@y.org ;c@z.org ") == ["a@x.org", "b@y.org", "c@z.org"]

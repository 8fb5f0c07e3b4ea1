"""Tables put the address, its status and the reason first."""

from __future__ import annotations

from outreach_core.ui.tables import reading_order


def test_reading_order_puts_address_status_reason_first() -> None:
    """Verify the reading columns move to the left in that order, the rest keep theirs."""
    columns = ["name", "email", "city", "email_normalized", "status", "reason", "mx_host"]
    assert reading_order(columns) == [
        "email_normalized", "email", "status", "reason", "name", "city", "mx_host",
    ]  # fmt: skip
    assert reading_order(["Record", "Looked up", "Verdict", "What it means", "Found"]) == [
        "Verdict", "What it means", "Record", "Looked up", "Found",
    ]  # fmt: skip
    assert reading_order(["a", "b"]) == ["a", "b"]

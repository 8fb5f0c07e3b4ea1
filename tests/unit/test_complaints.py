"""The complaint-rate brake as a table: complaints / sends over the last 1,000 sends."""

from __future__ import annotations

import pytest

from outreach_core.domain.complaints import (
    BRAKE_PREFIX,
    ComplaintRate,
    brake_reason,
    over_threshold,
)


@pytest.mark.parametrize(
    ("sends", "complaints", "braked"),
    [
        (0, 0, False),  # nothing sent yet
        (1000, 0, False),
        (1000, 1, False),  # exactly 0.1 % is allowed
        (1000, 2, True),  # 0.2 %
        (500, 1, True),  # 0.2 % of fewer sends
        (10, 1, True),  # one complaint in ten is already far over
        (100_000, 100, False),  # a window of more sends than 1,000 is the caller's concern
    ],
)
def test_brake_applies_strictly_above_one_in_a_thousand(
    sends: int, complaints: int, braked: bool
) -> None:
    """Verify the threshold is strict and the reason says which engine and why."""
    rate = ComplaintRate(engine="relay", sends=sends, complaints=complaints)
    assert over_threshold(rate) is braked
    reason = brake_reason(rate)
    if braked:
        assert reason is not None and reason.startswith(BRAKE_PREFIX)
        assert f"{complaints} complaints in its last {sends} sends" in reason
        assert "engine relay" in reason
    else:
        assert reason is None

"""Never twice: which other run of a workflow is named for an address it holds."""

from __future__ import annotations

from outreach_core.domain.dedupe import Taken, sent_recently_reason, taken_by


def test_a_run_that_sent_is_named_before_runs_still_sending() -> None:
    """Verify the holder picked per address: sent before sending, then the earliest run,
    whatever order the rows come in."""
    rows = [
        ("a@x.org", 9, True),
        ("a@x.org", 12, False),
        ("a@x.org", 7, True),
        ("b@x.org", 12, True),
        ("b@x.org", 8, True),
        ("c@x.org", 15, False),
        ("c@x.org", 11, False),
    ]
    expected = {
        "a@x.org": Taken(run_id=12, sending=False),
        "b@x.org": Taken(run_id=8, sending=True),
        "c@x.org": Taken(run_id=11, sending=False),
    }
    assert taken_by(rows) == expected
    assert taken_by(reversed(rows)) == expected
    assert taken_by([]) == {}


def test_the_reason_names_the_run_and_whether_it_is_sending_now() -> None:
    """Verify the skip reasons: the reason word, the run, the window as the user set it."""
    assert (
        sent_recently_reason(Taken(run_id=12, sending=False), window_hours=24.0)
        == "sent_recently: run 12 of this workflow sent to it within 24 h"
    )
    assert (
        sent_recently_reason(Taken(run_id=12, sending=False), window_hours=1.5)
        == "sent_recently: run 12 of this workflow sent to it within 1.5 h"
    )
    assert (
        sent_recently_reason(Taken(run_id=3, sending=True), window_hours=24.0)
        == "sent_recently: run 3 of this workflow is sending it now"
    )

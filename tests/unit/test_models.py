"""The run and delivery state machines, walked over their full cross products."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Mapping
from enum import StrEnum

import pytest
from pydantic import ValidationError

from outreach_core.domain.models import SendOptions
from outreach_core.domain.states import (
    DELIVERY_TRANSITIONS,
    FINAL_RUN_STATES,
    RUN_REOPEN_TRANSITIONS,
    RUN_TRANSITIONS,
    DeliveryStatus,
    RunStatus,
    check_delivery_transition,
    check_run_transition,
)
from outreach_core.errors import IllegalTransition

RUN_PAIRS = list(itertools.product(RunStatus, RunStatus))
DELIVERY_PAIRS = list(itertools.product(DeliveryStatus, DeliveryStatus))


def _pair_id(pair: tuple[StrEnum, StrEnum]) -> str:
    return f"{pair[0]}->{pair[1]}"


def _reachable(table: Mapping[StrEnum, frozenset[StrEnum]], start: StrEnum) -> set[StrEnum]:
    seen = {start}
    todo = deque([start])
    while todo:
        for target in table[todo.popleft()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


@pytest.mark.parametrize("pair", RUN_PAIRS, ids=[_pair_id(p) for p in RUN_PAIRS])
def test_run_transition_allowed_exactly_when_listed(pair: tuple[RunStatus, RunStatus]) -> None:
    """Verify check_run_transition accepts a pair iff RUN_TRANSITIONS lists it."""
    current, target = pair
    if target in RUN_TRANSITIONS[current]:
        check_run_transition(current, target)
    else:
        with pytest.raises(IllegalTransition, match=f"from {current} to {target}"):
            check_run_transition(current, target)


@pytest.mark.parametrize("pair", RUN_PAIRS, ids=[_pair_id(p) for p in RUN_PAIRS])
def test_reopen_allows_exactly_the_listed_pairs_and_the_normal_ones(
    pair: tuple[RunStatus, RunStatus],
) -> None:
    """Verify check_run_transition(reopen=True) accepts a pair iff RUN_TRANSITIONS or
    RUN_REOPEN_TRANSITIONS lists it (the retry action's only extra moves)."""
    current, target = pair
    listed = RUN_TRANSITIONS[current] | RUN_REOPEN_TRANSITIONS.get(current, frozenset())
    if target in listed:
        check_run_transition(current, target, reopen=True)
    else:
        with pytest.raises(IllegalTransition, match=f"from {current} to {target}"):
            check_run_transition(current, target, reopen=True)


def test_reopen_only_requeues_completed_or_paused_runs() -> None:
    """Verify the retry action may only move COMPLETED or PAUSED runs, and only to QUEUED; a
    FAILED or CANCELLED run stays where it is, and without `reopen` COMPLETED is final."""
    assert {
        RunStatus.COMPLETED: {RunStatus.QUEUED},
        RunStatus.PAUSED: {RunStatus.QUEUED},
    } == RUN_REOPEN_TRANSITIONS
    with pytest.raises(IllegalTransition, match="final state"):
        check_run_transition(RunStatus.COMPLETED, RunStatus.QUEUED)
    with pytest.raises(IllegalTransition):
        check_run_transition(RunStatus.CANCELLED, RunStatus.QUEUED, reopen=True)


@pytest.mark.parametrize("pair", DELIVERY_PAIRS, ids=[_pair_id(p) for p in DELIVERY_PAIRS])
def test_delivery_transition_allowed_exactly_when_listed(
    pair: tuple[DeliveryStatus, DeliveryStatus],
) -> None:
    """Verify check_delivery_transition accepts a pair iff DELIVERY_TRANSITIONS lists it."""
    current, target = pair
    if target in DELIVERY_TRANSITIONS[current]:
        check_delivery_transition(current, target)
    else:
        with pytest.raises(IllegalTransition, match=f"from {current} to {target}"):
            check_delivery_transition(current, target)


def test_transition_tables_cover_every_state() -> None:
    """Verify both tables have an entry for every member of their enum and no stranger."""
    assert set(RUN_TRANSITIONS) == set(RunStatus)
    assert set(DELIVERY_TRANSITIONS) == set(DeliveryStatus)
    assert all(targets <= set(RunStatus) for targets in RUN_TRANSITIONS.values())
    assert all(targets <= set(DeliveryStatus) for targets in DELIVERY_TRANSITIONS.values())


def test_no_state_transitions_to_itself() -> None:
    """Verify no run or delivery state lists itself as a target (a no-op is not a transition)."""
    assert all(state not in targets for state, targets in RUN_TRANSITIONS.items())
    assert all(state not in targets for state, targets in DELIVERY_TRANSITIONS.items())


def test_final_run_states_are_completed_failed_cancelled_with_no_exit() -> None:
    """Verify COMPLETED, FAILED and CANCELLED are the final run states and have no exits."""
    assert {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED} == FINAL_RUN_STATES
    for state in FINAL_RUN_STATES:
        assert RUN_TRANSITIONS[state] == frozenset()
        with pytest.raises(IllegalTransition, match="final state"):
            check_run_transition(state, RunStatus.SENDING)


def test_final_delivery_states_are_sent_failed_skipped_cancelled_with_no_exit() -> None:
    """Verify sent, failed, skipped and cancelled deliveries can never change again (a retry
    cannot resurrect a cancelled row)."""
    final = {state for state, targets in DELIVERY_TRANSITIONS.items() if not targets}
    assert final == {
        DeliveryStatus.SENT,
        DeliveryStatus.FAILED,
        DeliveryStatus.SKIPPED,
        DeliveryStatus.CANCELLED,
    }
    with pytest.raises(IllegalTransition, match="final state"):
        check_delivery_transition(DeliveryStatus.CANCELLED, DeliveryStatus.PENDING)
    with pytest.raises(IllegalTransition, match="final state"):
        check_delivery_transition(DeliveryStatus.SENT, DeliveryStatus.PENDING)


def test_only_unsent_deliveries_can_be_cancelled() -> None:
    """Verify `cancelled` is reached only from pending (the cancel) and sending (a claimed row
    released unstarted after it); a row that went out, or may have, keeps its outcome."""
    sources = {
        s for s, targets in DELIVERY_TRANSITIONS.items() if DeliveryStatus.CANCELLED in targets
    }
    assert sources == {DeliveryStatus.PENDING, DeliveryStatus.SENDING}


def test_every_run_state_is_reachable_from_queued() -> None:
    """Verify a graph walk from QUEUED reaches every run state."""
    assert _reachable(RUN_TRANSITIONS, RunStatus.QUEUED) == set(RunStatus)


def test_every_final_run_state_is_reachable_from_every_other_state() -> None:
    """Verify no run can get stuck: every non-final state can still reach CANCELLED."""
    for state in set(RunStatus) - FINAL_RUN_STATES:
        assert RunStatus.CANCELLED in _reachable(RUN_TRANSITIONS, state), state


def test_every_delivery_state_is_reachable_from_pending() -> None:
    """Verify a graph walk from pending reaches every delivery state."""
    assert _reachable(DELIVERY_TRANSITIONS, DeliveryStatus.PENDING) == set(DeliveryStatus)


def test_unknown_and_deferred_deliveries_only_go_back_to_pending() -> None:
    """Verify unknown/deferred are re-queued only on request (back to pending), never sent directly."""
    assert DELIVERY_TRANSITIONS[DeliveryStatus.UNKNOWN] == {DeliveryStatus.PENDING}
    assert DELIVERY_TRANSITIONS[DeliveryStatus.DEFERRED] == {DeliveryStatus.PENDING}


def test_paused_run_resumes_only_to_sending() -> None:
    """Verify a paused run goes back to SENDING, never to INITIALIZING or COMPLETED directly."""
    assert RunStatus.SENDING in RUN_TRANSITIONS[RunStatus.PAUSED]
    assert RunStatus.INITIALIZING not in RUN_TRANSITIONS[RunStatus.PAUSED]
    assert RunStatus.COMPLETED not in RUN_TRANSITIONS[RunStatus.PAUSED]


def test_illegal_transition_message_lists_allowed_targets() -> None:
    """Verify the error explains itself by naming the states the run may go to."""
    with pytest.raises(IllegalTransition) as excinfo:
        check_run_transition(RunStatus.QUEUED, RunStatus.COMPLETED)
    assert "allowed: CANCELLED, INITIALIZING" in str(excinfo.value)


@pytest.mark.parametrize(
    "field, value",
    [
        ("rate", -1.0),  # negative rate
        ("burst", 0),  # nothing could ever be sent
        ("concurrency", 0),  # no worker at all
        ("concurrency", 101),  # above the documented ceiling
        ("batch_size", 0),
        ("max_attempts", 0),
    ],
)
def test_send_options_reject_out_of_range_values(field: str, value: float) -> None:
    """Verify SendOptions refuses a value outside its documented range, naming the field."""
    with pytest.raises(ValidationError, match=field):
        SendOptions(**{field: value})


def test_send_options_accept_zero_rate_as_unlimited_and_are_frozen() -> None:
    """Verify rate 0 (unlimited) is valid and options cannot be changed after creation."""
    options = SendOptions(rate=0)
    assert options.rate == 0
    with pytest.raises(ValidationError):
        options.rate = 5  # type: ignore[misc]

"""The table of the actions a user may take on a run, and its agreement with the transitions."""

from __future__ import annotations

import pytest

from outreach_core.domain.states import (
    RUN_ACTIONS,
    RUN_REOPEN_TRANSITIONS,
    RUN_TRANSITIONS,
    RunAction,
    RunStatus,
    allowed_actions,
    statuses_allowing,
)

#: where each action leads
TARGETS = {
    RunAction.PAUSE: RunStatus.PAUSED,
    RunAction.RESUME: RunStatus.SENDING,
    RunAction.CANCEL: RunStatus.CANCELLED,
    RunAction.RETRY: RunStatus.QUEUED,
}


def test_every_action_has_a_row() -> None:
    """Verify the table names every action and only run statuses."""
    assert set(RUN_ACTIONS) == set(RunAction)
    assert all(statuses <= set(RunStatus) for statuses in RUN_ACTIONS.values())


def test_the_table() -> None:
    """Verify the statuses each action is allowed in."""
    assert RUN_ACTIONS[RunAction.PAUSE] == {RunStatus.SENDING}
    assert RUN_ACTIONS[RunAction.RESUME] == {RunStatus.PAUSED}
    assert RUN_ACTIONS[RunAction.CANCEL] == {
        RunStatus.QUEUED,
        RunStatus.INITIALIZING,
        RunStatus.SENDING,
        RunStatus.PAUSED,
    }
    assert RUN_ACTIONS[RunAction.RETRY] == {RunStatus.COMPLETED, RunStatus.PAUSED}


@pytest.mark.parametrize("action", list(RunAction))
@pytest.mark.parametrize("status", list(RunStatus))
def test_an_allowed_action_is_a_legal_transition(action: RunAction, status: RunStatus) -> None:
    """Verify an action is allowed only where its move is in the transition tables
    (retry through the reopen table, the one way back from COMPLETED)."""
    target = TARGETS[action]
    legal = RUN_TRANSITIONS[status] | (
        RUN_REOPEN_TRANSITIONS.get(status, frozenset())
        if action is RunAction.RETRY
        else frozenset()
    )
    if status in RUN_ACTIONS[action]:
        assert target in legal


@pytest.mark.parametrize("status", list(RunStatus))
def test_allowed_actions_reads_the_table(status: RunStatus) -> None:
    """Verify allowed_actions(status) is every action whose row holds the status."""
    assert allowed_actions(status) == {a for a, s in RUN_ACTIONS.items() if status in s}


def test_allowed_actions_by_status() -> None:
    """Verify which buttons a run in each status enables."""
    assert allowed_actions(RunStatus.QUEUED) == {RunAction.CANCEL}
    assert allowed_actions(RunStatus.INITIALIZING) == {RunAction.CANCEL}
    assert allowed_actions(RunStatus.SENDING) == {RunAction.PAUSE, RunAction.CANCEL}
    assert allowed_actions(RunStatus.PAUSED) == {
        RunAction.RESUME,
        RunAction.CANCEL,
        RunAction.RETRY,
    }
    assert allowed_actions(RunStatus.COMPLETED) == {RunAction.RETRY}
    assert allowed_actions(RunStatus.FAILED) == frozenset()
    assert allowed_actions(RunStatus.CANCELLED) == frozenset()


def test_statuses_allowing_is_in_lifecycle_order() -> None:
    """Verify the statuses a message names come in the order a run goes through them."""
    assert statuses_allowing(RunAction.CANCEL) == (
        RunStatus.QUEUED,
        RunStatus.INITIALIZING,
        RunStatus.SENDING,
        RunStatus.PAUSED,
    )
    assert statuses_allowing(RunAction.PAUSE) == (RunStatus.SENDING,)
    assert statuses_allowing(RunAction.RETRY) == (RunStatus.PAUSED, RunStatus.COMPLETED)

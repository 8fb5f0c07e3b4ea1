"""Engine limits shared by every process, on SQLite and PostgreSQL.

The store's rate states and leases on an explicit clock; then two OS processes
(`tests/limit_worker.py`) taking from one rate and leasing one engine's slots; a process
SIGKILLed holding leases; and two daemons sending one run through a loopback SMTP sink on an
engine limited to 20/s with burst 5, the sink's own arrival times checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_many_daemons import run_status, senders_of, start_daemons, stop_all, workflow_of

from outreach_core import services
from outreach_core.adapters.store import engines, shared_limits
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import EngineLimits, SendOptions
from outreach_core.domain.states import RunStatus

from conftest import REPO, cli_env, wait_for
from smtp_server import SmtpTestServer

WORKER = str(REPO / "tests" / "limit_worker.py")
#: recipients of the run two daemons send at 20/s: about 8 s
PACED = 160
#: messages the sink may count over the bound: 0.1 s of spread between a token and its
#: message's arrival, at 20/s
JITTER = 2


def make_engine(ws: Workspace, tmp_path: Path, limits: EngineLimits | None = None) -> int:
    engine = services.save_engine(
        ws,
        name="shared",
        url=f"outbox://{tmp_path / 'out'}",
        from_email="team@example.com",
        from_name="Team",
        actor="test",
    )
    if limits:
        with ws.db.begin() as conn:
            engines.set_limits(conn, engine.id, limits)
    return engine.id


def worker(tmp_path: Path, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, *map(str, args)],
        cwd=REPO,
        env=cli_env(tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_together(procs: list[subprocess.Popen[str]]) -> float:
    """Once every worker is loaded, tell each to start 0.3 s from now; that time."""
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    start = time.time() + 0.3
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(f"{start}\n")
        proc.stdin.flush()
    return start


def results(procs: list[subprocess.Popen[str]]) -> list[list]:
    found = []
    for proc in procs:
        out = proc.stdout.read() if proc.stdout else ""
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        found.append(json.loads(out))
    return found


def most_in_a_window(stamps: list[float], window: float) -> int:
    """The most stamps in any half-open window [t, t + window)."""
    ordered = sorted(stamps)
    most, first = 0, 0
    for last, stamp in enumerate(ordered):
        while ordered[first] <= stamp - window:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_a_rate_state_is_taken_on_an_explicit_clock(workspace: Workspace) -> None:
    """Verify the store's take: the burst at once, then nothing until an interval passed, and
    rows long full are pruned."""
    with workspace.db.begin() as conn:
        first = shared_limits.take_tokens(conn, "engine 1", rate=10, burst=3, wanted=5, now=100.0)
        empty = shared_limits.take_tokens(conn, "engine 1", rate=10, burst=3, wanted=1, now=100.0)
        later = shared_limits.take_tokens(conn, "engine 1", rate=10, burst=3, wanted=5, now=100.2)
        assert (first.granted, empty.granted, later.granted) == (3, 0, 2)
        assert empty.wait > 0
        assert shared_limits.prune_states(conn, idle_s=60, now=200.0) == 1


def test_leases_lapse_renew_and_release_on_an_explicit_clock(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify slots below the limit are leased once each, a lapsed one goes to another holder
    (and its old holder cannot renew it), and released ones are free again."""
    engine_id = make_engine(workspace, tmp_path)
    with workspace.db.begin() as conn:
        shared_limits.ensure_slots(conn, engine_id, 3)

        def lease(holder: str, wanted: int, now: float) -> list[int]:
            return shared_limits.lease_slots(
                conn, engine_id, holder=holder, limit=2, wanted=wanted, ttl_s=10, now=now
            )

        assert lease("a", 5, 0.0) == [0, 1]  # slot 2 is above the limit of 2
        assert lease("b", 1, 5.0) == []
        assert shared_limits.renew_leases(
            conn, engine_id, holder="a", slots=[0], ttl_s=10, now=8.0
        ) == [0]
        assert lease("b", 2, 12.0) == [1]  # slot 0 was renewed to 18, slot 1 lapsed at 10
        assert shared_limits.renew_leases(
            conn, engine_id, holder="a", slots=[0, 1], ttl_s=10, now=12.0
        ) == [0]
        shared_limits.release_leases(conn, engine_id, holder="a", slots=[0, 1])
        assert shared_limits.live_leases(conn, engine_id, now=13.0) == {1: "b"}
        assert lease("c", 2, 13.0) == [0]


def test_two_processes_share_one_rate(workspace: Workspace, db_url: str, tmp_path: Path) -> None:
    """Verify two processes taking from one rate of 20/s, burst 5, for 3 s: in any 1 s or 2 s
    window they got at most burst + rate * window tokens between them (one more allowed for
    the moment a token is stamped after it was granted), both got some, and the total is
    close to what the rate allows."""
    procs = [worker(tmp_path, "tokens", db_url, "engine 9", 20, 5, 3.0) for _ in range(2)]
    start_together(procs)
    got = results(procs)
    stamps = [t for process in got for t in process]
    assert all(len(process) > 5 for process in got), [len(p) for p in got]
    assert 0.8 * (5 + 20 * 3) <= len(stamps) <= 5 + 20 * 3 + 1
    for window in (1.0, 2.0):
        assert most_in_a_window(stamps, window) <= 5 + 20 * window + 1, window


def test_two_processes_never_hold_more_slots_than_the_limit(
    workspace: Workspace, db_url: str, tmp_path: Path
) -> None:
    """Verify two processes of three senders each, on an engine of max_concurrency 3: at no
    moment were more than 3 sends holding a slot, and both processes sent."""
    engine_id = make_engine(workspace, tmp_path, EngineLimits(max_concurrency=3))
    procs = [worker(tmp_path, "slots", db_url, engine_id, 3, 2.0) for _ in range(2)]
    start_together(procs)
    got = results(procs)
    assert all(got), [len(p) for p in got]
    events = sorted(
        (moment, kind) for held in got for began, ended in held for moment, kind in
        ((began, 1), (ended, -1))
    )  # fmt: skip
    at_once, most = 0, 0
    for _, kind in events:  # an end sorts before a start at the same moment
        at_once += kind
        most = max(most, at_once)
    assert most <= 3
    with workspace.db.connect() as conn:
        assert shared_limits.live_leases(conn, engine_id) == {}  # closed: every lease given back


def test_a_killed_holders_slots_come_back_after_the_lease_ttl(
    workspace: Workspace, db_url: str, tmp_path: Path
) -> None:
    """Verify a process SIGKILLed holding both slots of an engine (leases of 2 s, renewed):
    nobody gets a slot at first, and both come back within the TTL of its last renewal."""
    engine_id = make_engine(workspace, tmp_path, EngineLimits(max_concurrency=2))
    doomed = worker(tmp_path, "hold", db_url, engine_id, 2, 2.0)
    try:
        assert doomed.stdout is not None
        assert doomed.stdout.readline().strip() == "held"
        time.sleep(1.0)  # past a renewal
        doomed.kill()
        doomed.wait(timeout=10)
        killed = time.time()

        def lease() -> list[int]:
            with workspace.db.begin() as conn:
                return shared_limits.lease_slots(
                    conn, engine_id, holder="heir", limit=2, wanted=2, ttl_s=30
                )

        assert lease() == []
        wait_for(lambda: bool(lease()), timeout=5, what="the lapsed slots")
        back = time.time() - killed
    finally:
        if doomed.poll() is None:
            doomed.kill()
        doomed.communicate()
    assert 0.5 <= back <= 2.5
    with workspace.db.connect() as conn:
        assert set(shared_limits.live_leases(conn, engine_id).values()) == {"heir"}


@pytest.mark.races
def test_two_daemons_send_one_run_within_the_engines_shared_rate(
    workspace: Workspace, db_url: str, tmp_path: Path
) -> None:
    """Verify two daemons sending one run of 160 through an engine limited to 20/s, burst 5
    and 2 sends at once: both send, the sink never has more than 2 messages in progress, and the sink never sees more than rate * window + burst in any 1 s or 10 s, by
    its own arrival times, give or take JITTER: a message reaches the sink a hand-off commit
    and an SMTP exchange after its token, and those vary by some tens of ms."""
    with SmtpTestServer() as sink:
        flow = workflow_of(
            workspace,
            "paced",
            sink.url,
            PACED,
            SendOptions(rate=0, batch_size=10, skip_mx=True, concurrency=4),
        )
        with workspace.db.begin() as conn:
            engines.set_limits(
                conn,
                flow.engine_ids[0],
                EngineLimits(rate_per_second=20, burst=5, max_concurrency=2),
            )
        run_id = services.queue_run(workspace, flow.id, trigger="test", actor="test")
        daemons = start_daemons(2, tmp_path, db_url)
        try:
            wait_for(lambda: run_status(workspace, run_id) is RunStatus.COMPLETED, timeout=120,
                     what="the run")  # fmt: skip
        finally:
            errors = stop_all(daemons)
        stamps = [item.at for item in sink.handler.received]
        peak = sink.handler.peak_transactions
    assert not any("Traceback" in e for e in errors), errors
    assert len(stamps) == PACED
    assert len(senders_of(workspace, run_id)) == 2  # both daemons sent part of it
    assert peak <= 2
    per_second, per_10_s = most_in_a_window(stamps, 1.0), most_in_a_window(stamps, 10.0)
    assert per_second <= 20 + 5 + JITTER, per_second
    assert per_10_s <= 20 * 10 + 5 + JITTER, per_10_s

"""No template can stop a worker: bombs in `send --dry-run` and in a daemon's run.

Each row of the audience picks one bomb (`kind`): a huge power, nested ranges, string
repetition, a filter given a huge width, a macro fork bomb (only the time limit stops it) and
an output past the size cap. The dry run (the CLI as a subprocess) lists each as a
`render_error` naming its bound. A daemon (a subprocess, on SQLite and on PostgreSQL) records
them the same way, sends the row that renders and another queued run to the loopback SMTP sink
meanwhile, and stops within 10 s of SIGTERM; also while a render or a send is still under way,
when its watchdog ends it and leaves the run to be taken over.

Every wait has a timeout, so a worker that does hang fails the test instead of the suite.
"""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import deliveries, runs
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.models import SendOptions
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource

from conftest import REPO, cli_env, make_settings, run_cli, wait_for
from smtp_server import SmtpTestServer

#: what SIGTERM to exit may take at most (the behaviour under test, not a tuning)
STOP_WITHIN_S = 10.0

MACRO = "{% macro fork(n) %}{% if n %}{{ fork(n - 1) }}{{ fork(n - 1) }}{% endif %}{% endmacro %}"
#: kind -> (expression, what the render error must say); as the tester wrote them
LITERAL_BOMBS = {
    "power": ("{{ 9**(9**9) }}", "text: exponent too large"),
    "ranges": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "text: loop limit: range() of 100,000 numbers; a message may take at most 100,000",
    ),
    "repetition": ("{{ 'a' * 10**8 * 5 }}", "text: string repetition too large"),
    "center": ("{{ kind|center(10**9) }}", "text: |center would make 1,000,000,000 characters"),
    "fork": ("{{ fork(60) }}", "text: time limit of 2 s per message exceeded"),
    "size": (
        "{% for i in range(2000) %}{{ kind * 1000 }}{% endfor %}",
        "text: template exceeds the 1 MB size cap",
    ),
}
#: the same bombs with their numbers read from the row (`one` is 1): a template is compiled in
#: this process to set the workflow up, and Jinja would fold a constant expression right then
ROW_BOMBS = {
    "power": "{{ 9 ** ((one|int) * 9 ** 9) }}",
    "ranges": "{% for i in range(100000 * (one|int)) %}{% for j in range(100000) %}{% endfor %}"
    "{% endfor %}",
    "repetition": "{{ 'a' * (10 ** 8 * (one|int)) * 5 }}",
}


def bomb_template(bombs: dict[str, str]) -> str:
    branches = "".join(
        f"{{% {'if' if n == 0 else 'elif'} kind == '{kind}' %}}{expression}"
        for n, (kind, expression) in enumerate(bombs.items())
    )
    return f"{MACRO}{branches}{{% else %}}Hello {{{{ name }}}}{{% endif %}}\n"


def bomb_rows() -> list[dict[str, str]]:
    kinds = [*LITERAL_BOMBS, "fine"]
    return [{"email": f"{k}@example.com", "name": k.title(), "kind": k, "one": "1"} for k in kinds]


@pytest.fixture
def sink() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


def test_dry_run_lists_each_bomb_as_a_render_error_naming_its_bound(
    tmp_path: Path, sink: SmtpTestServer
) -> None:
    """Verify `send --dry-run` ends (within 60 s, the time limit ~2 s of it) and lists each
    bomb row as render_error naming its bound, the fine row as sendable, nothing sent."""
    contacts, folder = tmp_path / "contacts.csv", tmp_path / "tpl"
    with contacts.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["email", "name", "kind", "one"])
        writer.writeheader()
        writer.writerows(bomb_rows())
    folder.mkdir()
    (folder / "subject.txt").write_text("Hi {{ name }}\n")
    bombs = {kind: expression for kind, (expression, _) in LITERAL_BOMBS.items()}
    (folder / "body.txt").write_text(bomb_template(bombs))

    try:
        result = run_cli(
            tmp_path, "send", str(contacts), "--template", str(folder), "--engine", sink.url,
            "--skip-mx", "--dry-run", timeout=60,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("the dry run did not end within 60 s")

    assert result.returncode == 0, result.stderr
    rows = len(LITERAL_BOMBS) + 1
    assert f"dry run: {rows} rows, 1 would be sent, {rows - 1} would not" in result.stdout
    listed = {
        line.split("\t")[2]: line.split("\t")[1:4:2]
        for line in result.stdout.splitlines()
        if line.startswith("row ")
    }
    assert set(listed) == {f"{kind}@example.com" for kind in LITERAL_BOMBS}
    for kind, (_, bound) in LITERAL_BOMBS.items():
        word, reason = listed[f"{kind}@example.com"]
        assert word == "render_error"
        assert reason.startswith(f"render_error: {bound}"), reason
    assert sink.handler.received == []


def seed(ws: Workspace, name: str, sink_url: str, rows: list[dict], text: str, **opts) -> int:
    """A workflow of `rows` sending `text` through the sink, and its run queued."""
    workflow = services.setup_workflow(
        ws,
        name=name,
        parsed=ParsedFile(
            source=f"{name}.csv", columns=list(rows[0]), email_column="email", rows=rows
        ),
        template=TemplateSource("Hi {{ name }}", None, text),
        engine_url=sink_url,
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0, skip_mx=True, **opts),
        actor="test",
    )
    return services.queue_run(ws, workflow.id, trigger="test", actor="test")


def start_daemon(tmp_path: Path, db_url: str) -> subprocess.Popen:
    log = (tmp_path / "daemon.log").open("w")
    return subprocess.Popen(
        [sys.executable, "scheduler_daemon.py", "--interval", "0.5"],
        cwd=REPO,
        env=cli_env(tmp_path, OUTREACH_DATABASE_URL=db_url),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop_and_time(daemon: subprocess.Popen) -> tuple[float, int]:
    """SIGTERM the daemon; seconds until it exited and its exit code (killed after 30 s)."""
    daemon.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    try:
        code = daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
        pytest.fail("the daemon was still running 30 s after SIGTERM")
    return time.monotonic() - sent, code


@pytest.fixture
def ws(db_url: str, tmp_path: Path) -> Iterator[Workspace]:
    workspace = open_workspace(make_settings(tmp_path, db_url))
    yield workspace
    workspace.close()


def status_of(ws: Workspace, run_id: int) -> RunStatus:
    with ws.db.connect() as conn:
        return runs.get_run(conn, run_id).status


def test_a_daemon_records_the_bombs_sends_the_rest_and_stops_on_sigterm(
    ws: Workspace, db_url: str, tmp_path: Path, sink: SmtpTestServer
) -> None:
    """Verify a daemon given a run of bombs records each as render_error naming its bound,
    sends its fine row and another queued run meanwhile, and exits 0 within 10 s of SIGTERM."""
    bombs = {
        kind: ROW_BOMBS.get(kind, expression) for kind, (expression, _) in LITERAL_BOMBS.items()
    }
    bomb_run = seed(ws, "bombs", sink.url, bomb_rows(), bomb_template(bombs))
    others = [{"email": f"other{n}@example.com", "name": f"O{n}"} for n in range(5)]
    other_run = seed(ws, "others", sink.url, others, "Hello {{ name }}")
    daemon = start_daemon(tmp_path, db_url)
    try:
        wait_for(
            lambda: {status_of(ws, bomb_run), status_of(ws, other_run)} == {RunStatus.COMPLETED},
            what="both runs completed",
            timeout=120,
        )
    finally:
        elapsed, code = stop_and_time(daemon)

    assert (code, elapsed <= STOP_WITHIN_S) == (0, True), (elapsed, code)
    with ws.db.connect() as conn:
        ledger = {d.email: d for d in deliveries.list_deliveries(conn, bomb_run)}
        other_ledger = deliveries.list_deliveries(conn, other_run)
    for kind, (_, bound) in LITERAL_BOMBS.items():
        delivery = ledger[f"{kind}@example.com"]
        assert delivery.status is DeliveryStatus.SKIPPED
        assert (delivery.reason or "").startswith(f"render_error: {bound}"), delivery.reason
    assert ledger["fine@example.com"].status is DeliveryStatus.SENT
    assert {d.status for d in other_ledger} == {DeliveryStatus.SENT}
    assert sorted(sink.handler.by_recipient()) == sorted(
        ["fine@example.com", *(row["email"] for row in others)]
    )


def test_a_daemon_stops_within_10_s_of_sigterm_while_its_renders_are_slow(
    ws: Workspace, db_url: str, tmp_path: Path, sink: SmtpTestServer
) -> None:
    """Verify a daemon freezing a run of 30 rows that each take the 2 s time limit (a minute
    of rendering) exits within 10 s of SIGTERM: its watchdog ends it, says so in the log, and
    nothing was sent."""
    rows = [{"email": f"fork{n}@example.com", "name": "F", "kind": "fork"} for n in range(30)]
    run_id = seed(ws, "forks", sink.url, rows, bomb_template({"fork": "{{ fork(60) }}"}))
    daemon = start_daemon(tmp_path, db_url)
    try:
        wait_for(
            lambda: status_of(ws, run_id) is RunStatus.INITIALIZING,
            what="the run being frozen",
            timeout=60,
        )
        time.sleep(1)  # well into the renders of the freeze
    finally:
        elapsed, code = stop_and_time(daemon)

    log = (tmp_path / "daemon.log").read_text()
    assert elapsed <= STOP_WITHIN_S, (elapsed, log[-2000:])
    assert code == 3, log[-2000:]
    assert "event=daemon.forced_exit" in log
    assert status_of(ws, run_id) is RunStatus.INITIALIZING  # left for take-over
    assert sink.handler.received == []


def test_a_daemon_stops_within_10_s_of_sigterm_while_a_send_hangs_and_the_run_is_taken_over(
    ws: Workspace, db_url: str, tmp_path: Path, sink: SmtpTestServer
) -> None:
    """Verify a daemon whose send waits 20 s on the server's DATA reply exits within 10 s of
    SIGTERM (forced), and `resume` then takes the run over at once: the hanging message is
    `unknown` (never resent), the two others are sent once."""
    rows = [{"email": f"{who}@example.com", "name": who} for who in ("slow", "a", "b")]
    sink.handler.slow_data["slow@example.com"] = 20
    run_id = seed(ws, "slow", sink.url, rows, "Hello {{ name }}", batch_size=1, concurrency=1)
    daemon = start_daemon(tmp_path, db_url)
    try:
        wait_for(lambda: sink.handler.active_transactions >= 1, what="the slow DATA", timeout=60)
    finally:
        elapsed, code = stop_and_time(daemon)

    log = (tmp_path / "daemon.log").read_text()
    assert elapsed <= STOP_WITHIN_S, (elapsed, log[-2000:])
    assert (code, "event=daemon.forced_exit" in log) == (3, True), log[-2000:]
    assert status_of(ws, run_id) is RunStatus.SENDING

    resumed = run_cli(
        tmp_path, "resume", str(run_id), env=cli_env(tmp_path, OUTREACH_DATABASE_URL=db_url)
    )

    assert resumed.returncode == 1, resumed.stderr  # complete, one delivery unsettled
    assert status_of(ws, run_id) is RunStatus.COMPLETED
    with ws.db.connect() as conn:
        ledger = {d.email: d.status for d in deliveries.list_deliveries(conn, run_id)}
    assert ledger == {
        "slow@example.com": DeliveryStatus.UNKNOWN,
        "a@example.com": DeliveryStatus.SENT,
        "b@example.com": DeliveryStatus.SENT,
    }
    assert sorted(sink.handler.by_recipient()) == ["a@example.com", "b@example.com"]

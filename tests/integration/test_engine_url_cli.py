"""Engine URLs on the command line, against a real SMTP server that requires a password:

- `send --engine-env VAR`, `--engine-file PATH` and OUTREACH_ENGINE_URL keep the password out of
  the process list, and it shows nowhere: output at DEBUG, the stored display fields and
  names, the audit log, `runs --json`, exported CSVs, the database file;
- a password holding `#`, `/` and `@` is read right; URLs where it cannot be told where the
  secret ends, and malformed ports, exit 2 with a message holding no piece of the secret;
- a second send with the same user, host and port but another password leaves the first
  engine's stored URL as it was (a new engine version), and a paused run of the first resumes
  with the first password.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from outreach_core import services
from outreach_core.adapters import crypto
from outreach_core.adapters.store import tables
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.services import compliance

from conftest import REPO, cli_env, make_settings, run_cli
from smtp_server import RecordingHandler, free_port

#: `#`, `/` and `@` typed as they are: read on the last `@`
PASSWORD = "Xq7#mK/9@vR2-wZ"
OTHER = "Jt4/Lp8#Hd3"


class PasswordSmtp:
    """aiosmtpd requiring AUTH as `mailer` with one of `accepted` (changeable while running)."""

    def __init__(self, *accepted: str) -> None:
        self.accepted = set(accepted)
        self.handler = RecordingHandler()
        self.port = free_port()

        def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
            ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"mailer"
            ok = ok and auth_data.password.decode() in self.accepted
            return AuthResult(success=ok, handled=False)

        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port,
            authenticator=authenticate, auth_require_tls=False,
        )  # fmt: skip

    def url(self, password: str) -> str:
        return f"smtp://mailer:{password}@127.0.0.1:{self.port}?tls=none"

    def __enter__(self) -> PasswordSmtp:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def pieces(secret: str) -> list[str]:
    """Every 3-character piece of the secret."""
    return [secret[i : i + 3] for i in range(len(secret) - 2)]


def shown(text: str, secret: str) -> list[str]:
    return [piece for piece in pieces(secret) if piece in text]


def forms(secret: str) -> list[str]:
    """The secret as typed and percent-encoded (how a URL may carry it)."""
    from urllib.parse import quote

    return [secret, quote(secret, safe=""), quote(secret)]


def write_inputs(tmp_path: Path) -> tuple[Path, Path]:
    template = tmp_path / "tpl"
    template.mkdir(exist_ok=True)
    (template / "subject.txt").write_text("Hello {{ name }}")
    (template / "body.txt").write_text("Hello {{ name }}")
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("email,name\nann@example.com,Ann\nbob@example.com,Bob\n")
    return contacts, template


def send_args(contacts: Path, template: Path, *engine: str) -> list[str]:
    return [
        sys.executable, "-m", "outreach_core", "send", str(contacts), "--template", str(template),
        *engine, "--from", "Team <team@example.com>", "--rate", "0", "--skip-mx",
    ]  # fmt: skip


def run_watched(argv: list[str], env: Mapping[str, str]) -> tuple[int, str, str, str]:
    """Run the CLI and read its command line as `ps` shows it (/proc/PID/cmdline, readable by
    every local user) while it runs: (exit code, stdout, stderr, that command line)."""
    process = subprocess.Popen(
        argv, cwd=REPO, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen = ""
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:  # empty until the new program is set up
        seen = Path(f"/proc/{process.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert seen, "the command line could not be read while the CLI ran"
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stdout, stderr, seen


def everything_stored(tmp_path: Path, db_url: str | None = None) -> str:
    """Every row of every table, as text."""
    ws = open_workspace(make_settings(tmp_path, db_url))
    try:
        with ws.db.connect() as conn:
            return "\n".join(
                repr(row)
                for table in tables.metadata.sorted_tables
                for row in conn.execute(sa.select(table))
            )
    finally:
        ws.close()


@pytest.fixture
def smtp() -> Iterator[PasswordSmtp]:
    with PasswordSmtp(PASSWORD) as server:
        yield server


def test_the_url_from_an_env_var_a_file_or_the_default_sends_and_never_shows_the_password(
    tmp_path: Path, smtp: PasswordSmtp
) -> None:
    """Verify `--engine-env`, `--engine-file` and OUTREACH_ENGINE_URL each send (the password
    with `#`, `/`, `@` read right: the server accepts the login), the password is in none of
    the command lines (as built and as /proc shows them), the output at DEBUG, the display
    fields, engine names, audit log, `runs --json`, the export, or the database file."""
    contacts, template = write_inputs(tmp_path)
    url = smtp.url(PASSWORD)
    secret_file = tmp_path / "engine.url"
    secret_file.write_text(url + "\n# the first line only is read\n")
    secret_file.chmod(0o600)
    env = cli_env(tmp_path, LOG_LEVEL="DEBUG")
    ways = {
        "env": (send_args(contacts, template, "--engine-env", "SMTP_URL"), {"SMTP_URL": url}),
        "file": (send_args(contacts, template, "--engine-file", str(secret_file)), {}),
        "default": (send_args(contacts, template), {"OUTREACH_ENGINE_URL": url}),
    }
    texts = []
    for way, (argv, extra) in ways.items():
        code, stdout, stderr, seen = run_watched(argv, {**env, **extra})
        assert code == 0, (way, stdout, stderr)
        assert stdout.startswith("run: ") and "2 sent" in stdout, stdout
        assert "can be read by other users" not in stderr  # the file is 0600
        assert shown(" ".join(argv), PASSWORD) == [] and shown(seen, PASSWORD) == [], way
        assert "--engine-" in seen or way == "default"  # /proc was read from the CLI itself
        texts += [stdout, stderr]
    assert len(smtp.handler.received) == 6

    listed = run_cli(tmp_path, "runs", "--json")
    exported = run_cli(tmp_path, "export", "1", "--out", str(tmp_path / "run1.csv"))
    assert listed.returncode == exported.returncode == 0
    texts += [listed.stdout, exported.stdout, exported.stderr, (tmp_path / "run1.csv").read_text()]
    ws = open_workspace(make_settings(tmp_path))
    try:
        engines = services.list_engines(ws)
        audit = compliance.audit_entries(ws)
        texts += [repr(engines), repr(audit)]
    finally:
        ws.close()
    # the same URL three times: one engine, shown masked
    assert [(e.name, e.display_url) for e in engines] == [
        (f"cli smtp://mailer:***@127.0.0.1:{smtp.port}?tls=none",
         f"smtp://mailer:***@127.0.0.1:{smtp.port}?tls=none"),
    ]  # fmt: skip
    text = "\n".join(texts)
    assert shown(text, PASSWORD) == [], shown(text, PASSWORD)
    stored = everything_stored(tmp_path) + (tmp_path / "data" / "outreach.db").read_bytes().decode(
        "latin-1"
    )
    assert [form for form in forms(PASSWORD) if form in stored] == []
    assert "engine.save" in stored  # the audit log was searched too


def test_an_engine_file_readable_by_others_is_used_with_a_warning(
    tmp_path: Path, smtp: PasswordSmtp
) -> None:
    """Verify a 0644 engine file still sends, and stderr says to chmod it (naming the file,
    not its content)."""
    contacts, template = write_inputs(tmp_path)
    secret_file = tmp_path / "engine.url"
    secret_file.write_text(smtp.url(PASSWORD))
    secret_file.chmod(0o644)
    argv = send_args(contacts, template, "--engine-file", str(secret_file))
    code, stdout, stderr, _ = run_watched(argv, cli_env(tmp_path))
    assert code == 0, stderr
    assert f"{secret_file} can be read by other users; `chmod 600 {secret_file}`" in stderr
    assert shown(stdout + stderr, PASSWORD) == []


def test_engine_in_argv_still_works_and_warns_when_it_holds_a_secret(
    tmp_path: Path, smtp: PasswordSmtp
) -> None:
    """Verify `--engine URL` keeps working; with a password in it stderr warns that `ps`
    shows it (without repeating it); an outbox URL, which holds none, gets no warning."""
    contacts, template = write_inputs(tmp_path)
    done = run_cli(tmp_path, *send_args(contacts, template, "--engine", smtp.url(PASSWORD))[3:])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the secret in --engine can be read by every local user (ps)" in done.stderr
    assert shown(done.stdout + done.stderr, PASSWORD) == []
    outbox = f"outbox://{tmp_path / 'outbox'}"
    done = run_cli(tmp_path, *send_args(contacts, template, "--engine", outbox)[3:])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "--engine can be read" not in done.stderr


@pytest.mark.parametrize(
    ("url", "secret", "expected"),
    [
        ("smtp://mailer:p@ssWq#9Zx@127.0.0.1:2525", "p@ssWq#9Zx", "cannot tell where"),
        ("smtp://mailer:Zq7Yv@127.0.0.1:2525?tls=none&x=Kw9@other", "Zq7Yv", "cannot tell where"),
        ("smtp://mailer:8421#Kx9zz", "8421#Kx9zz", "no '#' after the host"),
        ("smtp://mailer:pa/ssWq", "pa/ssWq", "no path after the host"),
        ("smtp://mailer:Pw9xQ", "Pw9xQ", "port must be a number from 1 to 65535"),
        ("smtp://127.0.0.1:99999?tls=none", "", "port must be a number from 1 to 65535"),
        ("smtp://127.0.0.1:25x?tls=none", "", "port must be a number from 1 to 65535"),
        ("mailgun://key-Qw8Er7@mg.example.com:abc", "key-Qw8Er7", "port must be a number"),
    ],
)
def test_unreadable_urls_and_bad_ports_exit_2_showing_nothing_of_the_secret(
    tmp_path: Path, url: str, secret: str, expected: str
) -> None:
    """Verify each URL given through --engine-env is refused: exit 2, a message saying what
    is wrong (and how to encode the password), no traceback, no piece of the secret, no run."""
    contacts, template = write_inputs(tmp_path)
    done = run_cli(
        tmp_path, *send_args(contacts, template, "--engine-env", "SMTP_URL")[3:],
        env=cli_env(tmp_path, SMTP_URL=url, LOG_LEVEL="DEBUG"),
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert shown(done.stdout + done.stderr, secret) == []
    assert json.loads(run_cli(tmp_path, "runs", "--json").stdout) == []


@pytest.mark.parametrize(
    ("engine", "extra", "expected"),
    [
        (["--engine-env", "smtp://mailer:Qw8Er7Ty@h:25"], {}, "NAME of an environment variable"),
        (["--engine-env", "NOT_SET_HERE"], {}, "--engine-env NOT_SET_HERE: that variable is not"),
        (["--engine-env", "EMPTY_URL"], {"EMPTY_URL": " "}, "is not set or is empty"),
        (["--engine-file", "smtp://mailer:Qw8Er7Ty@h:25"], {}, "the path of a file"),
        (["--engine-file", "/nonexistent/engine.url"], {}, "no such file"),
        ([], {}, "no engine given: use --engine-env VAR, --engine-file PATH or"),
        (["--engine", "outbox:///tmp/x", "--engine-env", "X"], {}, "not allowed with argument"),
    ],
)
def test_the_engine_options_refuse_mistakes_with_exit_2(
    tmp_path: Path, engine: list[str], extra: dict[str, str], expected: str
) -> None:
    """Verify a URL given where a name or path was expected, an unset variable, a missing file,
    no engine at all and two engine options each exit 2 saying what to do, never echoing the
    URL."""
    contacts, template = write_inputs(tmp_path)
    done = run_cli(
        tmp_path, *send_args(contacts, template, *engine)[3:], env=cli_env(tmp_path, **extra)
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr, done.stderr
    assert shown(done.stdout + done.stderr, "Qw8Er7Ty") == []
    assert "Traceback" not in done.stderr


def stored_engines(tmp_path: Path, db_url: str) -> dict[str, str]:
    """Each engine's name and its URL as stored, decrypted."""
    ws = open_workspace(make_settings(tmp_path, db_url))
    try:
        with ws.db.connect() as conn:
            rows = conn.execute(sa.select(tables.engines.c.name, tables.engines.c.url_encrypted))
            return {name: crypto.decrypt(ws.fernet, encrypted) for name, encrypted in rows}
    finally:
        ws.close()


def test_another_password_makes_a_new_engine_version_and_old_runs_resume_with_theirs(
    tmp_path: Path, db_url: str
) -> None:
    """Verify: run 1 with password A pauses (the server takes only B for now); run 2 with B
    (same user, host, port) sends through a new engine version; engine 1 still decrypts to
    A's URL; once the server takes A again, `resume 1` sends with A; a third send with A
    reuses engine 1."""
    contacts, template = write_inputs(tmp_path)
    env = cli_env(tmp_path, OUTREACH_DATABASE_URL=db_url)
    with PasswordSmtp(OTHER) as smtp:
        first, second = smtp.url(PASSWORD), smtp.url(OTHER)
        base = f"cli smtp://mailer:***@127.0.0.1:{smtp.port}?tls=none"

        paused = run_cli(tmp_path, *send_args(contacts, template, "--engine-env", "U")[3:],
                         env={**env, "U": first})  # fmt: skip
        assert paused.returncode == 1 and "PAUSED" in paused.stdout, paused.stdout
        assert "authentication failed" in paused.stdout and smtp.handler.received == []

        sent = run_cli(tmp_path, *send_args(contacts, template, "--engine-env", "U")[3:],
                       env={**env, "U": second})  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert stored_engines(tmp_path, db_url) == {base: first, f"{base} (v2)": second}

        smtp.accepted = {PASSWORD}  # the old password works again; the new one no longer
        resumed = run_cli(tmp_path, "resume", "1", env=env)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "2 sent" in resumed.stdout
        assert len(smtp.handler.received) == 4

        again = run_cli(tmp_path, *send_args(contacts, template, "--engine-env", "U")[3:],
                        env={**env, "U": first})  # fmt: skip
        assert again.returncode == 0, again.stdout + again.stderr
    assert stored_engines(tmp_path, db_url) == {base: first, f"{base} (v2)": second}
    # the ledger: which engine took each run's messages
    ws = open_workspace(make_settings(tmp_path, db_url))
    deliveries, engines = tables.deliveries, tables.engines
    try:
        with ws.db.connect() as conn:
            took = set(
                conn.execute(
                    sa.select(deliveries.c.run_id, engines.c.name, deliveries.c.status)
                    .join(engines, engines.c.id == deliveries.c.engine_id)
                    .distinct()
                )
            )
    finally:
        ws.close()
    assert took == {(1, base, "sent"), (2, f"{base} (v2)", "sent"), (3, base, "sent")}


def test_concurrent_sends_with_different_passwords_each_keep_their_own_engine(
    workspace: Workspace,
) -> None:
    """Verify four processes' worth of concurrent set-ups, each with its own password for the
    same user, host and port, end with four engines, each holding its own URL."""
    urls = [f"smtp://mailer:Pw{n}Secret@127.0.0.1:2525?tls=none" for n in range(4)]
    saved: dict[str, int] = {}
    errors: list[BaseException] = []

    def save(url: str) -> None:
        try:
            engine = services.save_engine_version(
                workspace, name="cli smtp://mailer:***@127.0.0.1:2525?tls=none", url=url,
                from_email="team@example.com", from_name="Team", actor="t",
            )  # fmt: skip
            saved[url] = engine.id
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(saved.values())) == 4
    with workspace.db.connect() as conn:
        rows = conn.execute(sa.select(tables.engines.c.id, tables.engines.c.url_encrypted))
        stored = {engine_id: crypto.decrypt(workspace.fernet, enc) for engine_id, enc in rows}
    assert {url: stored[engine_id] for url, engine_id in saved.items()} == {u: u for u in urls}


def test_the_same_url_with_another_from_is_a_new_version_too(sqlite_workspace: Workspace) -> None:
    """Verify a send with the same URL but another From leaves the first engine's From as
    runs queued with it expect; the same URL and From reuse it."""
    url = "smtp://mailer:Pw0Secret@127.0.0.1:2525?tls=none"
    first = services.save_engine_version(
        sqlite_workspace, name="cli x", url=url, from_email="a@example.com", from_name="A",
        actor="t",
    )  # fmt: skip
    other = services.save_engine_version(
        sqlite_workspace, name="cli x", url=url, from_email="b@example.com", from_name="B",
        actor="t",
    )  # fmt: skip
    same = services.save_engine_version(
        sqlite_workspace, name="cli x", url=url, from_email="a@example.com", from_name="A",
        actor="t",
    )  # fmt: skip
    assert (first.name, other.name, same.id) == ("cli x", "cli x (v2)", first.id)
    assert [e.from_email for e in services.list_engines(sqlite_workspace)] == [
        "a@example.com", "b@example.com",
    ]  # fmt: skip
    assert os.environ.get("OUTREACH_ENGINE_URL") is None  # nothing leaks in from the runner


def test_a_display_form_stored_unmasked_before_is_shown_masked(sqlite_workspace: Workspace) -> None:
    """Verify an engine row whose display form was saved by the older mask (the whole URL,
    password after a `#`) is listed with the password masked."""
    from outreach_core.adapters.store import engines
    from outreach_core.domain.clock import utcnow

    with sqlite_workspace.db.begin() as conn:
        engines.upsert_engine(
            conn, name="old", kind="smtp", url_encrypted="x",
            display_url="smtp://bob:8421#Kx9zz@host:587", from_email="a@example.com",
            from_name="", now=utcnow(),
        )  # fmt: skip
    listed = services.list_engines(sqlite_workspace)
    assert [e.display_url for e in listed] == ["smtp://bob:***@host:587"]

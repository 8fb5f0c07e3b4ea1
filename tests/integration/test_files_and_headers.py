"""What the CLI leaves on disk and puts on the wire, checked as an attacker would look:

- a 5,000-character subject sent through the outbox engine is a folded header in the real
  .eml file (no line near the 998-octet limit) that decodes back intact; an absurd one is a
  render error of its row;
- an unsubscribe base URL that would add a second URI to List-Unsubscribe is refused;
- the database, the key file, the data folder and the outbox's messages are readable by their
  owner only, whatever the umask, and loose ones found at start are tightened with a log line.
"""

from __future__ import annotations

import csv
import os
import stat
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

from outreach_core.adapters.senders.outbox import message_files
from outreach_core.domain.templating import MAX_SUBJECT_CHARS

from conftest import REPO, cli_env, run_cli

LONG_SUBJECT = "".join(f"{n % 10}" if n % 97 else " " for n in range(1, 5001)).strip()


def write_send(tmp_path: Path, rows: list[tuple[str, str]]) -> tuple[Path, Path]:
    """A contacts file (email, topic) and a template whose subject is the topic."""
    contacts = tmp_path / "contacts.csv"
    with contacts.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "topic"])
        writer.writerows(rows)
    template = tmp_path / "tpl"
    template.mkdir()
    (template / "subject.txt").write_text("{{ topic }}\n")
    (template / "body.txt").write_text("Hello.\nUnsubscribe: https://example.com/unsubscribe\n")
    return contacts, template


def send(tmp_path: Path, contacts: Path, template: Path, outbox: Path, *extra: str):
    command = ["send", str(contacts), "--template", str(template), "--engine", f"outbox://{outbox}"]
    return run_cli(tmp_path, *command, "--rate", "0", "--skip-mx", *extra)


def test_5000_character_subject_is_folded_in_the_eml_and_decodes_intact(tmp_path: Path) -> None:
    """Verify a 5,000-character subject (one 4,000-character word among them) is written to
    the .eml in lines of at most 78 octets, none over 998, and parses back to the same text;
    a row whose subject would exceed the cap is skipped as render_error, not sent."""
    one_word = "w" * 4000 + " " + "x" * 999
    too_long = "y" * (MAX_SUBJECT_CHARS + 1)
    contacts, template = write_send(
        tmp_path,
        [
            ("ann@example.com", LONG_SUBJECT),
            ("bob@example.com", one_word),
            ("cy@example.com", too_long),
        ],
    )
    outbox = tmp_path / "outbox"

    result = send(tmp_path, contacts, template, outbox)

    assert result.returncode == 0, result.stdout + result.stderr  # skipped rows are settled
    assert "2 sent, 0 failed" in result.stdout and "1 skipped" in result.stdout
    written = {path.name.split("-", 1)[1]: path.read_bytes() for path in message_files(outbox)}
    assert sorted(written) == ["ann@example.com.eml", "bob@example.com.eml"]
    for data, subject in [
        (written["ann@example.com.eml"], LONG_SUBJECT),
        (written["bob@example.com.eml"], one_word),
    ]:
        head = data.split(b"\r\n\r\n")[0]
        assert max(len(line) for line in data.split(b"\r\n")) <= 998
        assert max(len(line) for line in head.split(b"\r\n")) <= 78
        assert message_from_bytes(data, policy=policy.default)["Subject"] == subject
    run_id = next(line for line in result.stdout.splitlines() if line.startswith("run: "))[5:]
    export = tmp_path / "ledger.csv"
    exported = run_cli(tmp_path, "export", run_id, "--out", str(export))
    assert exported.returncode == 0, exported.stderr
    rows = {row["email"]: row for row in csv.DictReader(export.open())}
    assert rows["cy@example.com"]["status"] == "skipped"
    assert "at most 10,000" in rows["cy@example.com"]["reason"]


def test_unsubscribe_url_with_a_second_uri_is_refused_by_the_cli(tmp_path: Path) -> None:
    """Verify `send --unsubscribe-url 'https://…/u>, <https://evil…'` exits 2 with one line
    saying which character is not allowed, and nothing is queued or written."""
    contacts, template = write_send(tmp_path, [("ann@example.com", "Hello")])
    outbox = tmp_path / "outbox"
    for url in ("https://example.com/u>, <https://evil.example/x", "https://e.com/u\tx"):
        result = send(tmp_path, contacts, template, outbox, "--unsubscribe-url", url)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("outreach: --unsubscribe-url: ")
        assert "is not allowed" in lines[0]
    assert not outbox.exists()
    runs = run_cli(tmp_path, "runs")
    assert runs.returncode == 0 and "run: " not in runs.stdout
    assert len(runs.stdout.strip().splitlines()) <= 1  # the header line at most


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cli_with_umask(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a subprocess whose umask is 0022 (files 0644 unless the code says else)."""
    return subprocess.run(
        [
            "/bin/sh",
            "-c",
            'umask 0022 && exec "$@"',
            "sh",
            sys.executable,
            "-m",
            "outreach_core",
            *args,
        ],
        cwd=REPO,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_database_key_data_folder_and_outbox_are_private_whatever_the_umask(
    tmp_path: Path,
) -> None:
    """Verify `demo` then a send, in a fresh data folder with umask 0022, leave the folder and
    the outbox 0700 and the database, the key file and every .eml 0600."""
    data = tmp_path / "data"
    demo = _cli_with_umask(tmp_path, "demo")
    assert demo.returncode == 0, demo.stderr
    contacts, template = write_send(
        tmp_path, [("ann@example.com", "Hello"), ("b@example.com", "Hi")]
    )
    sent = _cli_with_umask(
        tmp_path, "send", str(contacts), "--template", str(template),
        "--engine", f"outbox://{data / 'outbox'}", "--rate", "0", "--skip-mx",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stdout + sent.stderr

    assert _mode(data) == 0o700
    assert _mode(data / "outreach.db") == 0o600
    assert _mode(data / "secret.key") == 0o600
    assert _mode(data / "outbox") == 0o700
    messages = list(message_files(data / "outbox"))
    assert len(messages) == 2
    assert {_mode(path) for path in messages} == {0o600}
    loose = [p for p in data.rglob("*") if _mode(p) & 0o077]
    assert loose == []


def test_loose_files_found_at_start_are_tightened_with_a_log_line(tmp_path: Path) -> None:
    """Verify a data folder, database and key file left readable by others (0755/0644) are
    changed to 0700/0600 when the CLI opens the workspace, each with a warning, and the
    command still works."""
    data = tmp_path / "data"
    assert run_cli(tmp_path, "demo").returncode == 0
    os.chmod(data, 0o755)
    os.chmod(data / "outreach.db", 0o644)
    os.chmod(data / "secret.key", 0o644)

    result = run_cli(tmp_path, "runs")

    assert result.returncode == 0, result.stderr
    assert (_mode(data), _mode(data / "outreach.db"), _mode(data / "secret.key")) == (
        0o700,
        0o600,
        0o600,
    )
    for path, mode in [(data, "700"), (data / "outreach.db", "600"), (data / "secret.key", "600")]:
        assert f"{path} could be read by other users" in result.stderr
        assert f"changed to {mode}" in result.stderr

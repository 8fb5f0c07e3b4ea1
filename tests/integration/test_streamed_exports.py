"""The streamed outputs at small sizes: files written through `.part`, the workflow pre-flight
decided chunk by chunk as the run decides it, the outbox's subfolders, the spooled download."""

from __future__ import annotations

import asyncio
import csv
import io
import stat
from pathlib import Path

import pytest

from outreach_core import services
from outreach_core.adapters.contact_files import parse_csv
from outreach_core.adapters.csv_files import CsvRowWriter, csv_part_file, part_path
from outreach_core.adapters.senders.outbox import OutboxSender, message_files
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.message import Outgoing
from outreach_core.domain.models import SendOptions, SuppressionReason, Workflow
from outreach_core.domain.templating import TemplateSource
from outreach_core.errors import OutreachError
from outreach_core.services import compliance, run_summaries, streamed_preflight
from outreach_core.ui.spooled_downloads import SPOOL_IN_MEMORY, spooled_csv
from tests.e2e.dashboard import send_run

#: row 5 repeats row 1 in another chunk (chunks of 2), row 3 is suppressed, row 4 lacks
#: its `city` and does not render, row 6 is no address
CONTACTS = (
    b"email,city\n"
    b"ann@example.com,Oslo\n"
    b"bob@example.com,Rome\n"
    b"cat@example.com,Lima\n"
    b"dan@example.com,\n"
    b"ANN@example.com,Oslo\n"
    b"not-an-address,Bonn\n"
)


def _workflow(ws: Workspace, tmp_path: Path) -> Workflow:
    return services.setup_workflow(
        ws,
        name="chunks",
        parsed=parse_csv(CONTACTS, source="contacts.csv"),
        template=TemplateSource("Hi", None, "Weather in {{ city }}"),
        engine_url=f"outbox://{tmp_path / 'outbox'}",
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0, skip_mx=True),
        actor="test",
    )


def test_preflight_decides_each_row_across_chunks_and_keeps_only_samples(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify chunks of 2 rows give each row the outcome the run gives it (a duplicate in a
    later chunk names its first row), the CSV holds every row in order, and the result keeps
    at most `samples_per_status` rows of each status."""
    workflow = _workflow(workspace, tmp_path)
    compliance.suppress(workspace, "cat@example.com", reason=SuppressionReason.MANUAL, actor="t")
    monkeypatch.setattr(streamed_preflight, "CHUNK_ROWS", 2)
    out = io.StringIO(newline="")
    result = streamed_preflight.workflow_preflight(
        workspace, workflow.id, out=out, samples_per_status=1
    )
    rows = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert [(r["email"], r["status"]) for r in rows] == [
        ("ann@example.com", "valid"),
        ("bob@example.com", "valid"),
        ("cat@example.com", "suppressed"),
        ("dan@example.com", "render_error"),
        ("ANN@example.com", "duplicate"),
        ("not-an-address", "invalid_syntax"),
    ]
    assert rows[4]["reason"] == "same address as row 1"
    assert "city" in rows[3]["reason"]
    assert result.counts.line() == (
        "valid=2 invalid_syntax=1 duplicate=1 suppressed=1 render_error=1"
    )
    assert [r.email for r in result.rows_with("valid")] == ["ann@example.com"]
    assert result.to_send == 2


def test_preflight_download_holds_only_the_chosen_statuses(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify the CSV written for chosen statuses holds exactly those rows."""
    workflow = _workflow(workspace, tmp_path)
    made = spooled_csv(
        lambda out: streamed_preflight.workflow_preflight(
            workspace, workflow.id, out=out, samples_per_status=0, statuses={"duplicate"}
        )
    )
    rows = list(csv.reader(io.StringIO(made.decode("utf-8"), newline="")))
    assert rows[0][:3] == ["email", "city", "email_normalized"]
    assert [r[0] for r in rows[1:]] == ["ANN@example.com"]


def test_export_writes_through_a_part_file_renamed_at_the_end(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify `export` of an unknown run makes no file, and a finished export leaves its
    final file only, its rows those of the run."""
    out = tmp_path / "outcome.csv"
    with pytest.raises(OutreachError):
        run_summaries.export_run(workspace, 999, out)
    assert not out.exists() and not part_path(out).exists()
    workflow = _workflow(workspace, tmp_path)
    run_id = send_run(workspace, workflow)
    assert run_summaries.export_run(workspace, run_id, out) == 6
    assert not part_path(out).exists()
    assert out.read_bytes().decode("utf-8") == run_summaries.run_outcome_csv(workspace, run_id)
    assert len(run_summaries.run_outcome_rows(workspace, run_id, limit=2)) == 2


def test_an_interrupted_part_file_leaves_no_file_under_the_final_name(tmp_path: Path) -> None:
    """Verify an error half way through removes the part file and leaves an earlier file
    under the final name as it was."""
    out = tmp_path / "rows.csv"
    out.write_text("earlier\n", encoding="utf-8")
    with pytest.raises(RuntimeError), csv_part_file(out) as text:
        writer = CsvRowWriter(text)
        writer.write(["a", "=1+1"])
        assert part_path(out).exists()
        raise RuntimeError("interrupted")
    assert not part_path(out).exists()
    assert out.read_text(encoding="utf-8") == "earlier\n"
    with csv_part_file(out) as text:
        CsvRowWriter(text).write(["a", "=1+1"])
    assert out.read_text(encoding="utf-8") == "a,'=1+1\n"


def test_outbox_spreads_messages_over_day_and_thousand_id_folders(tmp_path: Path) -> None:
    """Verify the outbox writes `<day>/<id // 1000>/<id>-<recipient>.eml` (names made safe,
    folders 0700, files 0600) and `message_files` walks them in id order."""
    folder = tmp_path / "outbox"

    async def send_all() -> None:
        async with OutboxSender(folder) as sender:
            for delivery_id, recipient in ((12_345, "zed@example.com"), (7, "a b/c@example.com")):
                await sender.send(
                    Outgoing(
                        delivery_id, "team@example.com", recipient, b"Subject: x\r\n\r\n", "<m>"
                    )
                )

    asyncio.run(send_all())
    day = utcnow().date().isoformat()
    files = list(message_files(folder))
    assert [p.relative_to(folder).as_posix() for p in files] == [
        f"{day}/000000/00000007-a_b_c@example.com.eml",
        f"{day}/000012/00012345-zed@example.com.eml",
    ]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / day).stat().st_mode) == 0o700
    assert stat.S_IMODE(files[0].parent.stat().st_mode) == 0o700
    assert list(message_files(tmp_path / "missing")) == []


def test_spooled_csv_moves_to_disk_and_gives_every_byte() -> None:
    """Verify a CSV larger than the in-memory spool comes back whole."""
    line = "x" * 1000
    rows = SPOOL_IN_MEMORY // 1000 + 10
    made = spooled_csv(lambda out: CsvRowWriter(out).write_all([line] for _ in range(rows)))
    assert made == ((line + "\n") * rows).encode("utf-8")

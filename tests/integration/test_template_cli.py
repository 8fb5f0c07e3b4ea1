"""`template import` and `template export`: the folder format in and out of the workspace."""

from __future__ import annotations

from pathlib import Path

from conftest import REPO, run_cli

DEMO_TEMPLATE = REPO / "outreach_core" / "services" / "demo" / "template"


def test_import_then_export_gives_back_the_same_files(tmp_path: Path) -> None:
    """Verify a folder imported (twice: one version) and exported again has the same files;
    exporting an unknown name exits 2 listing the templates there are."""
    first = run_cli(tmp_path, "template", "import", str(DEMO_TEMPLATE), "--name", "Demo")
    again = run_cli(tmp_path, "template", "import", str(DEMO_TEMPLATE), "--name", "Demo")
    out = tmp_path / "exported"
    exported = run_cli(tmp_path, "template", "export", "Demo", "--out", str(out))

    assert first.stdout == again.stdout == "template 'Demo' is at version 1\n", first.stderr
    assert exported.returncode == 0, exported.stderr
    for name in ("subject.txt", "body.html", "body.txt"):
        assert (out / name).read_text() == (DEMO_TEMPLATE / name).read_text(), name

    unknown = run_cli(tmp_path, "template", "export", "Nope", "--out", str(out))

    assert unknown.returncode == 2
    assert "there is no template named 'Nope'; templates: 'Demo'" in unknown.stderr


def test_import_of_an_escape_payload_exits_2_naming_part_line_and_column(tmp_path: Path) -> None:
    """Verify the CLI refuses a folder whose body tries to escape the sandbox."""
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "subject.txt").write_text("Hi\n")
    (folder / "body.txt").write_text("ok\n{{ ''.__class__.__mro__ }}\n")

    result = run_cli(tmp_path, "template", "import", str(folder))

    assert result.returncode == 2
    assert result.stderr.startswith("outreach: text: line 2, column 17: not allowed in a template")

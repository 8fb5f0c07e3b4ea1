"""The Audiences page under AppTest: column choice with previews, multi-address cells, Import
disabled while no row would import, and managing saved audiences (view, search, rename,
delete, delete refused while a workflow uses the audience)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from streamlit.testing.v1 import AppTest

from outreach_core import services
from outreach_core.adapters.contact_files import parse_csv
from outreach_core.ui.views import plain
from tests.e2e.dashboard import HOME, Demo, keyed, open_test_workspace

#: headers that name no email column: the page finds it by its values
UNNAMED = (
    b"Contact,Reach me at,Firm\n"
    b"Ann Lee,ann@x.example ::: ann@home.example,Acme\n"
    b"Bob Ray,bob@y.example,Initech\n"
    b"Cy Wu,,Umbrella\n"
)


def open_audiences() -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page("pages/audiences.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_email_column_by_values_and_import_disabled_for_a_wrong_column(data_dir: Path) -> None:
    """Verify a file whose headers name no email column gets its address column proposed
    from the values (no warning), the pickers show values, a wrong choice disables Import with
    the reason, and the good choice enables it again without a stale warning."""
    at = open_audiences()
    at.file_uploader(key="upload").upload("people.csv", UNNAMED, "text/csv").run()
    assert not at.exception, [e.value for e in at.exception]
    picker = keyed(at.selectbox, "email_col")
    assert picker.value == "Reach me at"
    assert "Reach me at — ann@x.example ::: ann@home.example, bob@y.example" in picker.options
    assert not [w.value for w in at.warning if "email column" in w.value]
    assert at.button(key="import").disabled is False
    keyed(at.selectbox, "email_col").set_value("Firm").run()
    assert metrics(at)["Imported"] == "0"
    assert at.button(key="import").disabled is True
    assert "No row would import: column 'Firm' holds no usable address" in at.error[0].value
    keyed(at.selectbox, "email_col").set_value("Reach me at").run()
    assert at.button(key="import").disabled is False
    assert not at.error and not [w.value for w in at.warning if "email column" in w.value]


def test_multi_address_cells_first_or_one_row_each_then_import(data_dir: Path) -> None:
    """Verify the split choice: first address (3 rows) or one row per address (4 rows); the
    company mapping renames `Firm` to `company`; the audience keeps every row."""
    at = open_audiences()
    at.file_uploader(key="upload").upload("people.csv", UNNAMED, "text/csv").run()
    assert metrics(at) == {"Rows": "3", "Imported": "2", "Rejected": "1", "Duplicates": "0"}
    keyed(at.selectbox, "map_company").set_value("Firm")
    keyed(at.radio, "split_mode").set_value("each").run()
    assert metrics(at) == {"Rows": "4", "Imported": "3", "Rejected": "1", "Duplicates": "0"}
    assert any("`company` (Firm)" in c.value for c in at.caption)
    keyed(at.text_input, "name").set_value("split").run()
    at.button(key="import").click().run()
    assert "Imported 'split': 3 rows to send to, 1 rejected" in at.success[0].value
    ws = open_test_workspace(data_dir)
    try:
        (audience,) = services.list_audiences(ws)
        assert audience.email_column == "reach_me_at" and "company" in audience.columns
        assert "reach_me_at_all" in audience.columns
        emails = [r["reach_me_at"] for _, r in services.audience_rows(ws, audience.id)]
        assert emails == ["ann@x.example", "ann@home.example", "bob@y.example", ""]
    finally:
        ws.close()


def test_saved_audience_viewed_searched_renamed_downloaded_and_deleted(demo: Demo) -> None:
    """Verify the Saved audiences tab: rows with status and reason, a search, rename, the CSV
    of every row with status and reason, delete refused while the demo workflow uses the
    audience and done for an unused one."""
    data = b"Email,Name\nzoe@x.example,Zoe\n,Nobody\nZOE@x.example,Zoe again\n"
    services.import_audience(
        demo.ws, parse_csv(data, source="extra.csv"), name="extra", actor="test"
    )
    at = open_audiences()
    picker = keyed(at.selectbox, "aud_pick")
    assert picker.options == ["Demo contacts", "extra"]
    extra_id = next(a.id for a in services.list_audiences(demo.ws) if a.name == "extra")
    keyed(at.selectbox, "aud_pick").set_value(extra_id).run()
    frame = at.dataframe[-1].value
    assert frame[["row", "email", "status", "reason"]].values.tolist() == [
        [1, "zoe@x.example", "accepted", ""],
        [2, "", "rejected", "no email"],
        [3, "ZOE@x.example", "duplicate", "same address as row 1"],
    ]
    at.text_input(key="aud_search").set_value("again").run()
    assert at.dataframe[-1].value["Name"].tolist() == ["Zoe again"]
    assert any("1 of 3 rows match 'again'" in c.value for c in at.caption)
    download = at.get("download_button")
    assert download, "no download button"
    at.text_input(key=f"aud_new_name_{extra_id}").set_value("extra renamed")
    at.button(key=f"FormSubmitter:aud_rename_{extra_id}-Rename").click().run()
    assert plain("Renamed to 'extra renamed'.") == at.success[0].value
    assert [a.name for a in services.list_audiences(demo.ws)] == ["Demo contacts", "extra renamed"]
    # the demo audience: its workflow sends to it, so it stays
    demo_id = demo.workflow.audience_id
    keyed(at.selectbox, "aud_pick").set_value(demo_id).run()
    assert "Demo: spring workshop" in " ".join(c.value for c in at.caption)
    keyed(at.checkbox, "aud_sure").check().run()
    at.button(key="aud_delete").click().run()
    assert plain("used by the workflow 'Demo: spring workshop'") in at.error[0].value
    assert len(services.list_audiences(demo.ws)) == 2
    keyed(at.selectbox, "aud_pick").set_value(extra_id).run()
    assert keyed(at.checkbox, "aud_sure").value is False  # ticked for another audience
    keyed(at.checkbox, "aud_sure").check().run()
    at.button(key="aud_delete").click().run()
    assert plain("Deleted 'extra renamed'.") == at.success[0].value
    assert [a.name for a in services.list_audiences(demo.ws)] == ["Demo contacts"]


def test_audience_csv_keeps_original_columns_with_status(demo: Demo) -> None:
    """Verify the download of an audience: row, email, status, reason, then the file's own
    columns for every row, rejected ones included."""
    from outreach_core.services import audiences as audience_service
    from outreach_core.ui.audience_views import audience_frame

    audience, rows = audience_service.rows_with_status(demo.ws, demo.workflow.audience_id)
    text = audience_frame(audience, rows).to_csv(index=False)
    records = list(csv.DictReader(io.StringIO(text)))
    assert len(records) == audience.row_count
    assert list(records[0])[:4] == ["row", "email", "status", "reason"]
    assert {"first_name", "company", "city"} <= set(records[0])
    assert {r["status"] for r in records} >= {"accepted", "rejected"}
    assert all(r["reason"] for r in records if r["status"] == "rejected")

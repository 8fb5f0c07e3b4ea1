"""Column detection on the headers of common contacts exports, multi-address cells, the
status of every row, and the user's choices applied to a parsed file."""

from __future__ import annotations

import pytest

from outreach_core.adapters.contact_files import parse_csv, sort_rows
from outreach_core.adapters.contact_mapping import (
    ImportChoices,
    apply_choices,
    split_address_cells,
)
from outreach_core.domain.address_cells import (
    RowStatus,
    SplitMode,
    classify_rows,
    split_addresses,
    split_rows,
)
from outreach_core.domain.column_layouts import (
    ColumnMapping,
    ExportLayout,
    propose_mapping,
    rename_roles,
)

GOOGLE = [
    "First Name", "Middle Name", "Last Name", "Phonetic First Name", "Nickname", "Birthday",
    "Notes", "Labels", "E-mail 1 - Label", "E-mail 1 - Value", "E-mail 2 - Label",
    "E-mail 2 - Value", "Phone 1 - Label", "Phone 1 - Value", "Organization Name",
    "Organization Title",
]  # fmt: skip
GOOGLE_LEGACY = [
    "Name", "Given Name", "Additional Name", "Family Name", "Group Membership",
    "E-mail 1 - Type", "E-mail 1 - Value", "Organization 1 - Type", "Organization 1 - Name",
    "Organization 1 - Title",
]  # fmt: skip
OUTLOOK = [
    "Title", "First Name", "Middle Name", "Last Name", "Suffix", "Company", "Department",
    "Job Title", "Business Street", "E-mail Address", "E-mail Type", "E-mail Display Name",
    "E-mail 2 Address", "E-mail 3 Address", "Mobile Phone",
]  # fmt: skip
HUBSPOT = [
    "Record ID", "First Name", "Last Name", "Email", "Phone Number", "Contact owner",
    "Company Name", "Lifecycle Stage", "Create Date",
]  # fmt: skip
MAILCHIMP = [
    "Email Address", "First Name", "Last Name", "Address", "Phone Number", "MEMBER_RATING",
    "OPTIN_TIME", "LEID", "EUID",
]  # fmt: skip
SALESFORCE = ["Salutation", "First Name", "Last Name", "Title", "Account Name", "Email", "Phone"]
LINKEDIN = [
    "First Name",
    "Last Name",
    "URL",
    "Email Address",
    "Company",
    "Position",
    "Connected On",
]
APPLE = [
    "N", "FN", "ORG", "TITLE", "EMAIL;type=INTERNET;type=HOME",
    "EMAIL;type=INTERNET;type=WORK;type=pref", "TEL;type=CELL",
]  # fmt: skip


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (GOOGLE, ColumnMapping("E-mail 1 - Value", "First Name", "Last Name",
                               "Organization Name", ExportLayout.GOOGLE)),
        (GOOGLE_LEGACY, ColumnMapping("E-mail 1 - Value", "Given Name", "Family Name",
                                      "Organization 1 - Name", ExportLayout.GOOGLE)),
        (OUTLOOK, ColumnMapping("E-mail Address", "First Name", "Last Name", "Company",
                                ExportLayout.OUTLOOK)),
        (HUBSPOT, ColumnMapping("Email", "First Name", "Last Name", "Company Name",
                                ExportLayout.HUBSPOT)),
        (MAILCHIMP, ColumnMapping("Email Address", "First Name", "Last Name", None,
                                  ExportLayout.MAILCHIMP)),
        (SALESFORCE, ColumnMapping("Email", "First Name", "Last Name", "Account Name",
                                   ExportLayout.SALESFORCE)),
        (LINKEDIN, ColumnMapping("Email Address", "First Name", "Last Name", "Company",
                                 ExportLayout.LINKEDIN)),
        (APPLE, ColumnMapping("EMAIL;type=INTERNET;type=WORK;type=pref", None, None, "ORG",
                              ExportLayout.APPLE)),
    ],
    ids=["google", "google-legacy", "outlook", "hubspot", "mailchimp", "salesforce", "linkedin",
         "apple"],
)  # fmt: skip
def test_each_export_layout_is_mapped(headers: list[str], expected: ColumnMapping) -> None:
    """Verify each export's email, first name, last name and company columns are proposed,
    and the export is named."""
    assert propose_mapping(headers) == expected


def test_lowest_numbered_address_column_wins_whatever_the_order() -> None:
    """Verify `E-mail 1 - Value` is chosen over `E-mail 2 - Value` even when it comes later,
    and case and spacing do not matter."""
    headers = ["e-mail 2 - value", "Name", "E-MAIL  1 - VALUE"]
    assert propose_mapping(headers).email == "E-MAIL  1 - VALUE"


@pytest.mark.parametrize(
    "header", ["email", "E-Mail", "e_mail", "E Mail", "EMAIL_ADDRESS", "e-mail_address",
               "Recipient_Email", "mail_address", "EmailAddress", " Email. "],
)  # fmt: skip
def test_spellings_of_the_email_header(header: str) -> None:
    """Verify the spellings the importer knew before (and their case and punctuation
    variants) are still found."""
    assert propose_mapping(["Name", header]).email == header


def test_label_column_is_never_the_email_column() -> None:
    """Verify Google's `E-mail 1 - Label` is not taken for the address."""
    assert propose_mapping(["E-mail 1 - Label", "Notes"]).email is None


def test_unknown_headers_fall_back_to_the_values() -> None:
    """Verify a column named nothing like email is found by its values when samples are
    given (multi-address cells count), and not at all without them."""
    headers = ["Contact", "Reach me at"]
    samples = [["Ann", "ann@x.example ::: a2@x.example"], ["Bob", "bob@y.example"], ["Cy", ""]]
    assert propose_mapping(headers, samples).email == "Reach me at"
    assert propose_mapping(headers).email is None
    assert propose_mapping(headers, [["Ann", "not an address"]]).email is None
    assert propose_mapping(headers).layout is ExportLayout.GENERIC


@pytest.mark.parametrize(
    ("cell", "addresses"),
    [
        ("a@x.com ::: b@y.org", ["a@x.com", "b@y.org"]),
        ("a@x.com;b@y.org", ["a@x.com", "b@y.org"]),
        (" a@x.com , b@y.org ,", ["a@x.com", "b@y.org"]),
        ("a@x.com", ["a@x.com"]),
        ("   ", []),
    ],
)
def test_split_addresses(cell: str, addresses: list[str]) -> None:
    """Verify Google's ` ::: `, semicolons and commas separate addresses."""
    assert split_addresses(cell) == addresses


def test_split_rows_first_or_one_row_per_address() -> None:
    """Verify FIRST keeps one row with the first address, EACH one row per address; the
    original cell is kept either way."""
    rows = [{"m": "a@x.com ::: b@y.org", "n": "A"}, {"m": "", "n": "B"}]
    first, origin = split_rows(rows, column="m", into="email", mode=SplitMode.FIRST)
    assert [r["email"] for r in first] == ["a@x.com", ""] and origin == [0, 1]
    each, origin = split_rows(rows, column="m", into="email", mode=SplitMode.EACH)
    assert [(r["email"], r["n"], r["m"]) for r in each] == [
        ("a@x.com", "A", "a@x.com ::: b@y.org"),
        ("b@y.org", "A", "a@x.com ::: b@y.org"),
        ("", "B", ""),
    ]
    assert origin == [0, 0, 1]


def test_classify_rows_gives_every_row_a_status() -> None:
    """Verify accepted, rejected with the checker's reason, and duplicates (case ignored)
    naming the first row."""
    verdicts = classify_rows(
        [{"e": "ann@x.example"}, {"e": ""}, {"e": "ANN@x.example"}, {"e": "bad@"}], "e"
    )
    assert [v.status for v in verdicts] == [
        RowStatus.ACCEPTED,
        RowStatus.REJECTED,
        RowStatus.DUPLICATE,
        RowStatus.REJECTED,
    ]
    assert verdicts[1].reason == "no email"
    assert verdicts[2].reason == "same address as row 1" and verdicts[2].first_row == 1
    assert verdicts[3].reason


def test_rename_roles_keeps_names_unique() -> None:
    """Verify the chosen column takes the role's name and a column already called so moves
    aside."""
    columns = ["first_name", "given_name", "org"]
    assert rename_roles(columns, {"first_name": "given_name", "company": "org"}) == [
        "first_name_2",
        "first_name",
        "company",
    ]
    assert rename_roles(columns, {"first_name": "first_name", "last_name": None}) == columns


def test_apply_choices_on_a_google_export() -> None:
    """Verify a Google file: the address column found by parse, multi-address cells split
    (the whole cell kept in `e_mail_1_value_all`), names mapped to first_name/last_name/company, every row kept."""
    data = (
        b"Given Name,Family Name,E-mail 1 - Type,E-mail 1 - Value,Organization 1 - Name\n"
        b"Ann,Lee,* Work,ann@x.example ::: ann@home.example,Acme\n"
        b"Bob,Ray,* Home,,Initech\n"
        b"Cy,Wu,* Work,cy@z.example,\n"
    )
    parsed = parse_csv(data, source="google.csv")
    assert parsed.email_column == "e_mail_1_value"
    roles = {"first_name": "Given Name", "last_name": "Family Name", "company": None}
    roles["company"] = "Organization 1 - Name"
    each = apply_choices(parsed, ImportChoices("E-mail 1 - Value", roles, SplitMode.EACH))
    assert each.email_column == "e_mail_1_value"
    assert each.rows[1]["e_mail_1_value_all"] == "ann@x.example ::: ann@home.example"
    assert [(r["e_mail_1_value"], r["first_name"], r["company"]) for r in each.rows] == [
        ("ann@x.example", "Ann", "Acme"),
        ("ann@home.example", "Ann", "Acme"),
        ("", "Bob", "Initech"),
        ("cy@z.example", "Cy", ""),
    ]
    assert each.lines == [2, 2, 3, 4]
    assert each.headers[-1] == "E-mail 1 - Value (all addresses)"
    report = sort_rows(each)
    assert (len(report.imported), len(report.rejected)) == (3, 1)
    first = apply_choices(parsed, ImportChoices("E-mail 1 - Value", roles, SplitMode.FIRST))
    assert [r["e_mail_1_value"] for r in first.rows] == ["ann@x.example", "", "cy@z.example"]
    assert "1 cell of 'E-mail 1 - Value' holds several addresses" in first.notes[-1]


def test_split_address_cells_splits_the_detected_column_only_when_needed() -> None:
    """Verify the command line's split (the page's, without name mapping): the detected
    column's `;` and `,` cells split one row each with their lines, the other columns kept
    under their names; a file without such cells comes back unchanged, with no note."""
    data = b"Email,Given Name\nann@x.example; ann@y.example,Ann\nbob@x.example,Bob\n"
    parsed = parse_csv(data, source="list.csv")
    each = split_address_cells(parsed, SplitMode.EACH)
    assert [(r["email"], r["given_name"]) for r in each.rows] == [
        ("ann@x.example", "Ann"),
        ("ann@y.example", "Ann"),
        ("bob@x.example", "Bob"),
    ]
    assert (each.columns, each.lines) == (["email", "given_name", "email_all"], [2, 2, 3])
    assert split_address_cells(parsed).rows[0]["email"] == "ann@x.example"
    plain = parse_csv(b"Email,Given Name\nbob@x.example,Bob\n", source="plain.csv")
    assert split_address_cells(plain) == plain

"""Contacts exports as Google Contacts, Outlook and HubSpot write them (fictional people), with
the noise real files have: blank lines, rows without an address, multi-address cells, odd
casing, a duplicate."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

PEOPLE = [
    ("Ada", "Lovelace", "Analytical Engines", "ada.lovelace@example.com"),
    ("Grace", "Hopper", "Cobol Works", "grace.hopper@example.org"),
    ("Alan", "Turing", "Bletchley Labs", "alan.turing@example.net"),
    ("Edsger", "Dijkstra", "Shortest Path BV", "edsger@example.nl"),
    ("Barbara", "Liskov", "Substitution Inc", "barbara.liskov@example.com"),
    ("Donald", "Knuth", "TeX Press", "knuth@example.edu"),
    ("Margaret", "Hamilton", "Apollo Software", "margaret.hamilton@example.com"),
    ("Ken", "Thompson", "Unix Tools", "ken@example.org"),
    ("Frances", "Allen", "Compiler Co", "fran.allen@example.com"),
    ("John", "Backus", "Fortran Ltd", "j.backus@example.com"),
    ("Radia", "Perlman", "Spanning Tree", "radia@example.net"),
    ("Tim", "Berners-Lee", "Web Works", "timbl@example.org"),
    ("Hedy", "Lamarr", "Frequency Hop", "hedy@example.com"),
    ("Linus", "Torvalds", "Kernel Org", "linus@example.fi"),
    ("Katherine", "Johnson", "Orbit Math", "katherine.johnson@example.com"),
    ("Niklaus", "Wirth", "Pascal AG", "wirth@example.ch"),
]


@dataclass(frozen=True)
class Export:
    """One export file and what the page should make of it."""

    name: str
    data: bytes
    email: str
    first_name: str
    last_name: str
    company: str
    rows: int  # data rows (blank lines are not rows)
    imported: int
    rejected: int
    duplicates: int


def _csv(headers: list[str], rows: list[list[str]], blank_after: tuple[int, ...]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers)
    for index, row in enumerate(rows):
        writer.writerow(row)
        if index in blank_after:
            out.write("\r\n")
    return out.getvalue().encode("utf-8-sig")


def _noisy(people: list[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str]]:
    """Odd casing, a missing address, a broken one, a second address, a duplicate."""
    noisy = list(people)
    noisy[1] = (*noisy[1][:3], "Grace.HOPPER@Example.ORG")
    noisy[4] = (*noisy[4][:3], "")
    noisy[6] = (*noisy[6][:3], "margaret.hamilton(at)example.com")
    noisy[8] = (*noisy[8][:3], "fran.allen@example.com ::: frances@home.example")
    noisy.append(("GRACE", "hopper", "Cobol Works", "grace.hopper@example.org"))
    return noisy


def google_contacts() -> Export:
    """Google Contacts' CSV (2024 layout): labels beside values, ` ::: ` between addresses."""
    headers = [
        "First Name", "Middle Name", "Last Name", "Phonetic First Name", "Nickname",
        "File As", "Birthday", "Notes", "Labels", "E-mail 1 - Label", "E-mail 1 - Value",
        "E-mail 2 - Label", "E-mail 2 - Value", "Phone 1 - Label", "Phone 1 - Value",
        "Organization Name", "Organization Title",
    ]  # fmt: skip
    rows = [
        [f, "", last, "", "", "", "", "", "* myContacts", "* Work", e, "", "", "Mobile",
         "+1 555 0100", company, "Engineer"]
        for f, last, company, e in _noisy(PEOPLE)
    ]  # fmt: skip
    return Export("google-contacts.csv", _csv(headers, rows, (3, 10)), "E-mail 1 - Value",
                  "First Name", "Last Name", "Organization Name", 17, 14, 2, 1)  # fmt: skip


def outlook() -> Export:
    """Outlook's "Comma Separated Values" export: ~90 columns in life, the usual ones here."""
    headers = [
        "Title", "First Name", "Middle Name", "Last Name", "Suffix", "Company", "Department",
        "Job Title", "Business Street", "Business City", "Business Phone", "E-mail Address",
        "E-mail Type", "E-mail Display Name", "E-mail 2 Address", "Notes",
    ]  # fmt: skip
    people = _noisy(PEOPLE)
    people[8] = (*people[8][:3], "fran.allen@example.com; frances@home.example")
    rows = [
        ["", f, "", last, "", company, "R&D", "Engineer", "1 Main St", "Springfield",
         "+1 555 0100", e, "SMTP", f"{f} {last} ({e})" if e else "", "", ""]
        for f, last, company, e in people
    ]  # fmt: skip
    return Export("outlook-contacts.csv", _csv(headers, rows, (0,)), "E-mail Address",
                  "First Name", "Last Name", "Company", 17, 14, 2, 1)  # fmt: skip


def hubspot() -> Export:
    """HubSpot's "Export contacts" CSV."""
    headers = [
        "Record ID", "First Name", "Last Name", "Email", "Phone Number", "Contact owner",
        "Company Name", "Lifecycle Stage", "Last Activity Date", "Create Date",
    ]  # fmt: skip
    rows = [
        [str(5100 + i), f, last, e, "+1 555 0100", "Sam Sales", company, "lead", "",
         "2026-11-02 10:15"]
        for i, (f, last, company, e) in enumerate(_noisy(PEOPLE))
    ]  # fmt: skip
    return Export("hubspot-contacts.csv", _csv(headers, rows, (5, 6)), "Email", "First Name",
                  "Last Name", "Company Name", 17, 14, 2, 1)  # fmt: skip

"""Which column of a contacts file holds the address, the first and last name and the company.

Learned from the exports people bring: Google Contacts (`E-mail 1 - Value`, `Given Name`,
`Organization 1 - Name`), Outlook (`E-mail Address`, `Company`), HubSpot (`Email`,
`Company Name`), Mailchimp and LinkedIn (`Email Address`), Salesforce (`Account Name`) and
Apple's vCard-to-CSV (`EMAIL;type=INTERNET;type=pref`). Headers are compared with the known
names on their letters and digits only (`E-Mail_Address` is `email address`). A file whose headers name no email column may still have
one: sample values, when given, find the column that holds addresses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from outreach_core.domain.validation import check_syntax


class ExportLayout(StrEnum):
    """The tool a file looks exported from (shown to the user; the mapping does not depend on
    it)."""

    GOOGLE = "Google Contacts"
    OUTLOOK = "Outlook"
    HUBSPOT = "HubSpot"
    MAILCHIMP = "Mailchimp"
    SALESFORCE = "Salesforce"
    LINKEDIN = "LinkedIn"
    APPLE = "Apple Contacts (vCard)"
    GENERIC = "a plain list"


#: headers that are the email column, most specific first (normalised, see `normalise`)
EMAIL_NAMES = (
    "email",
    "e-mail",
    "email address",
    "e-mail address",
    "emailaddress",
    "e-mailaddress",
    "recipient email",
    "recipient",
    "primary email",
    "work email",
    "business email",
    "mail",
    "mail address",
)
FIRST_NAMES = ("first name", "firstname", "given name", "givenname", "first", "forename", "fname")
LAST_NAMES = ("last name", "lastname", "family name", "familyname", "surname", "last", "lname")
COMPANY_NAMES = (
    "company",
    "company name",
    "companyname",
    "organization",
    "organisation",
    "organization name",
    "organisation name",
    "organization 1 - name",
    "account name",
    "account",
    "employer",
    "org",
)
#: numbered address columns: Google `E-mail 2 - Value`, Outlook `E-mail 2 Address`
_NUMBERED_EMAIL = re.compile(r"^e-?mail (\d+)(?: - value| address)$")
_NUMBERED_ORG = re.compile(r"^organi[sz]ation (\d+) - name$")
#: vCard properties written as headers: `EMAIL;type=INTERNET;type=HOME`
_VCARD_EMAIL = re.compile(r"^(?:item\d+\.)?email;")
#: share of a column's non-empty sample values that must be addresses to take it by content
CONTENT_SHARE = 0.5


@dataclass(frozen=True)
class ColumnMapping:
    """The proposed header for each role (None: no column found); `layout` names the export."""

    email: str | None
    first_name: str | None
    last_name: str | None
    company: str | None
    layout: ExportLayout

    def roles(self) -> dict[str, str | None]:
        """The name roles (not the email) and their headers, in display order."""
        return {"first_name": self.first_name, "last_name": self.last_name, "company": self.company}


def normalise(header: str) -> str:
    """`  E-mail_1  -  Value ` -> `e-mail 1 - value`: case, spaces, dots and underscores
    ignored."""
    text = str(header).strip().lower().replace("_", " ").replace(".", " ")
    return re.sub(r"\s+", " ", text).strip()


def squash(header: str) -> str:
    """`E-Mail_Address` -> `emailaddress`: only letters and digits, lower case (how headers
    are compared with the known names)."""
    return re.sub(r"[^0-9a-z]+", "", str(header).lower())


def _by_name(headers: Sequence[str], names: Sequence[str]) -> str | None:
    keys = [squash(h) for h in headers]
    for name in names:
        if squash(name) in keys:
            return headers[keys.index(squash(name))]
    return None


def _numbered(headers: Sequence[str], pattern: re.Pattern[str]) -> str | None:
    """The header matching `pattern` with the lowest number (`E-mail 1 - Value` before 2)."""
    found = [
        (int(m.group(1)), i) for i, h in enumerate(headers) if (m := pattern.match(normalise(h)))
    ]
    return headers[min(found)[1]] if found else None


def _vcard_email(headers: Sequence[str]) -> str | None:
    """An `EMAIL;…` header: the one marked `pref` first, else the first one."""
    found = [h for h in headers if _VCARD_EMAIL.match(str(h).strip().lower())]
    preferred = [h for h in found if "pref" in h.lower()]
    return (preferred or found or [None])[0]


def _by_content(headers: Sequence[str], samples: Sequence[Sequence[str]]) -> str | None:
    """The column whose sampled values are mostly addresses (the first such column)."""
    for index, header in enumerate(headers):
        values = [str(row[index]).strip() for row in samples if index < len(row)]
        values = [v for v in values if v]
        if not values:
            continue
        good = sum(
            1
            for v in values
            if any(check_syntax(a).ok for a in re.split(r"\s*(?::::|;|,)\s*", v) if a)
        )
        if good / len(values) >= CONTENT_SHARE:
            return header
    return None


def detect_layout(headers: Sequence[str]) -> ExportLayout:
    """The export tool these headers look like."""
    keys = {normalise(h) for h in headers}
    raw = [str(h).strip().lower() for h in headers]
    if any(_VCARD_EMAIL.match(h) for h in raw):
        return ExportLayout.APPLE
    if any(_NUMBERED_EMAIL.match(k) and k.endswith("value") for k in keys) or (
        {"given name", "family name"} <= keys or any(_NUMBERED_ORG.match(k) for k in keys)
    ):
        return ExportLayout.GOOGLE
    if "e-mail address" in keys:
        return ExportLayout.OUTLOOK
    if "account name" in keys:
        return ExportLayout.SALESFORCE
    if "company name" in keys or "record id" in keys or "contact owner" in keys:
        return ExportLayout.HUBSPOT
    if "connected on" in keys or ("email address" in keys and "position" in keys):
        return ExportLayout.LINKEDIN
    if "email address" in keys:
        return ExportLayout.MAILCHIMP
    return ExportLayout.GENERIC


def detect_email(
    headers: Sequence[str], samples: Sequence[Sequence[str]] | None = None
) -> str | None:
    """The header of the email column: a known name, a numbered or vCard address column, or
    (with `samples`, rows of values in header order) the column holding addresses."""
    return (
        _by_name(headers, EMAIL_NAMES)
        or _numbered(headers, _NUMBERED_EMAIL)
        or _vcard_email(headers)
        or (_by_content(headers, samples) if samples else None)
    )


def propose_mapping(
    headers: Sequence[str], samples: Sequence[Sequence[str]] | None = None
) -> ColumnMapping:
    """The email, first name, last name and company columns these headers suggest."""
    return ColumnMapping(
        email=detect_email(headers, samples),
        first_name=_by_name(headers, FIRST_NAMES),
        last_name=_by_name(headers, LAST_NAMES),
        company=_by_name(headers, COMPANY_NAMES) or _numbered(headers, _NUMBERED_ORG),
        layout=detect_layout(headers),
    )


def rename_roles(columns: list[str], chosen: dict[str, str | None]) -> list[str]:
    """The variable names after mapping: the column chosen for a role (by its current variable
    name) is called by the role (`given_name` -> `first_name`); a column that held the role's
    name without being chosen gets a suffix (`first_name_2`), so names stay unique."""
    renamed = list(columns)
    for role, column in chosen.items():
        if column is None or column not in renamed or renamed[renamed.index(column)] == role:
            continue
        if role in renamed:
            clash = renamed.index(role)
            suffix = 2
            while f"{role}_{suffix}" in renamed:
                suffix += 1
            renamed[clash] = f"{role}_{suffix}"
        renamed[renamed.index(column)] = role
    return renamed

"""What DNS says about a domain's mail: the verdict words and one domain's verdict.

The lookups themselves are in `adapters/dns.py`; planning, the pre-flight and the ledger read
only these types.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DomainStatus(StrEnum):
    """What DNS says about a domain's mail."""

    #: MX records, or the implicit MX of an A/AAAA record
    VALID = "valid"
    #: the name exists but has neither MX nor A/AAAA
    NO_MX = "no_mx"
    #: `MX 0 .`: the domain accepts no mail (RFC 7505)
    NULL_MX = "null_mx"
    #: NXDOMAIN: the name does not exist
    NO_DOMAIN = "no_domain"
    #: timeout or server failure: unknown
    DNS_ERROR = "dns_error"


@dataclass(frozen=True)
class DomainResult:
    """The verdict on one domain (ASCII form)."""

    domain: str
    status: DomainStatus
    mx_host: str | None = None
    reason: str = ""

"""Per-recipient unsubscribe links (the workflow's base URL plus an HMAC token of the address)
and the List-Unsubscribe headers that carry them.

The token is HMAC-SHA256 over the lower-cased address with the workspace's unsubscribe signing
key (`compliance.unsubscribe_key`), so whoever serves the base URL can check that a link was made
by this workspace for this address (`verify`) without a table of tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

#: bytes of the HMAC kept in the token (128 bits)
TOKEN_BYTES = 16


def token(key: bytes, email: str) -> str:
    """The token for one address (case-insensitive), URL-safe base64 without padding."""
    digest = hmac.new(key, b"unsubscribe:" + email.strip().lower().encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()[:TOKEN_BYTES]).rstrip(b"=").decode()


def verify(key: bytes, email: str, candidate: str) -> bool:
    """Whether `candidate` is the token this key makes for `email` (constant time)."""
    # bytes: compare_digest refuses str with non-ASCII characters, and a link can hold any
    return hmac.compare_digest(token(key, email).encode(), candidate.encode())


@dataclass(frozen=True)
class UnsubscribeLinks:
    """Makes the `unsubscribe_url` of each recipient of a run."""

    base_url: str
    key: bytes

    def __call__(self, email: str) -> str:
        separator = "&" if urlsplit(self.base_url).query else "?"
        query = urlencode({"email": email, "token": token(self.key, email)})
        return f"{self.base_url}{separator}{query}"


def list_unsubscribe_headers(*, mailto: str | None, url: str | None) -> dict[str, str]:
    """List-Unsubscribe (RFC 2369) for one message; empty when the run has neither form.

    With an https URL also `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058);
    the URL comes first, the mailto (if any) after it.
    """
    uris = []
    if url:
        uris.append(f"<{url}>")
    if mailto:
        uris.append(f"<mailto:{mailto}?subject=unsubscribe>")
    if not uris:
        return {}
    found = {"List-Unsubscribe": ", ".join(uris)}
    if url and url.lower().startswith("https://"):
        found["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return found

"""Per-recipient unsubscribe links (the workflow's base URL plus an HMAC token of the address),
the per-recipient `mailto:` form, and the List-Unsubscribe headers that carry them.

The token is HMAC-SHA256 over the lower-cased address with the workspace's unsubscribe signing
key (`compliance.unsubscribe_key`), so whoever serves the base URL can check that a link was made
by this workspace for this address (`verify`) without a table of tokens. The mailto form
carries the same token in its subject (`unsubscribe TOKEN`), so the mailbox reader can tell a
request from the recipient from one forged for somebody else (`unsubscribe_requests`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

#: bytes of the HMAC kept in the token (128 bits)
TOKEN_BYTES = 16
#: the first word of the subject of a mailto unsubscribe request; the token follows it
MAILTO_SUBJECT_WORD = "unsubscribe"


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


def mailto_uri(address: str, token_: str) -> str:
    """`mailto:ADDRESS?subject=unsubscribe%20TOKEN`, percent-encoded as RFC 6068 asks (a space
    is %20, never +; `?`, `&`, `%`, `#` and `,` in the address are encoded)."""
    subject = f"{MAILTO_SUBJECT_WORD} {token_}"
    return f"mailto:{quote(address, safe='@+')}?subject={quote(subject, safe='')}"


@dataclass(frozen=True)
class MailtoLinks:
    """Makes the List-Unsubscribe `mailto:` URI of each recipient of a run."""

    address: str
    key: bytes

    def __call__(self, email: str) -> str:
        return mailto_uri(self.address, token(self.key, email))


def list_unsubscribe_headers(*, mailto: str | None, url: str | None) -> dict[str, str]:
    """List-Unsubscribe (RFC 2369) for one message; empty when the run has neither form.

    `mailto` is a whole `mailto:` URI (`MailtoLinks` makes one per recipient). With an https
    URL also `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058); the URL comes
    first, the mailto (if any) after it.
    """
    uris = []
    if url:
        uris.append(f"<{url}>")
    if mailto:
        uris.append(f"<{mailto}>")
    if not uris:
        return {}
    found = {"List-Unsubscribe": ", ".join(uris)}
    if url and url.lower().startswith("https://"):
        found["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return found


#: the longest unsubscribe base URL: with the recipient's address and token added, the link
#: must still fit on one header line of 998 characters (List-Unsubscribe cannot be folded
#: inside its angle brackets)
MAX_UNSUBSCRIBE_URL_CHARS = 400
# Characters that would end the URL inside List-Unsubscribe's `<...>` or start another one
# (`>`, `<`, `,`), quotes and backslashes, whitespace and every control character.
_URL_FORBIDDEN = re.compile(r"""[<>,"'`\\\s\x00-\x1f\x7f]""")


def check_unsubscribe_base_url(value: str) -> str:
    """One absolute http(s) URL that can sit inside List-Unsubscribe's `<...>` as it is.

    Raises ValueError with a message that says what to change.
    """
    example = "e.g. https://example.com/unsubscribe"
    if len(value) > MAX_UNSUBSCRIBE_URL_CHARS:
        raise ValueError(
            f"unsubscribe URL: {len(value)} characters; give at most "
            f"{MAX_UNSUBSCRIBE_URL_CHARS}, {example}"
        )
    bad = _URL_FORBIDDEN.search(value)
    if bad:
        shown = repr(bad.group())
        raise ValueError(
            f"unsubscribe URL: {shown} is not allowed (one address, without spaces, quotes, "
            f"commas or angle brackets), {example}"
        )
    if not value.isascii():
        raise ValueError(
            f"unsubscribe URL {value!r}: percent-encode non-ASCII characters and write the "
            f"host in its xn-- form, {example}"
        )
    parts = urlsplit(value)
    if "@" in parts.netloc:  # said without the value: what precedes @ may be a password
        raise ValueError(f"unsubscribe URL: remove the user:password@ part, {example}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme.lower() not in ("https", "http")
        or not parts.hostname
        or parts.fragment
        or port == -1
    ):
        raise ValueError(
            f"unsubscribe URL {value!r}: give an absolute https:// address with a host, a valid "
            f"port if any, and no #, {example}"
        )
    return value

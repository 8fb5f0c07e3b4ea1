"""List-Unsubscribe (RFC 2369) and one-click unsubscribe (RFC 8058) headers.

The https URL carries an opaque token per workflow and recipient: the recipient's address and
the workflow id encrypted with the workspace key, so the endpoint needs no lookup and nobody
can forge a token for another address.
"""

from __future__ import annotations

from cryptography.fernet import Fernet

from outreach_core import crypto

#: the placeholder in a workflow's unsubscribe URL
TOKEN = "{token}"


def make_token(fernet: Fernet, *, workflow_id: int, email: str) -> str:
    """Opaque and URL-safe (Fernet tokens are base64url)."""
    return crypto.encrypt(fernet, f"{workflow_id}:{email}")


def read_token(fernet: Fernet, token: str) -> tuple[int, str]:
    """(workflow id, address) from a token; raises ValueError if it is not ours."""
    workflow, _, email = crypto.decrypt(fernet, token).partition(":")
    if not workflow.isdigit() or not email:
        raise ValueError("not an unsubscribe token")
    return int(workflow), email


def headers(*, mailto: str | None, url: str | None, token: str) -> dict[str, str]:
    """The headers for one message; empty when the workflow has neither form.

    With an https URL: `List-Unsubscribe-Post: List-Unsubscribe=One-Click` too (RFC 8058),
    the https URI first, the mailto (if any) after it.
    """
    uris = []
    if url:
        uris.append(f"<{url.replace(TOKEN, token)}>")
    if mailto:
        uris.append(f"<mailto:{mailto}?subject=unsubscribe>")
    if not uris:
        return {}
    found = {"List-Unsubscribe": ", ".join(uris)}
    if url and url.lower().startswith("https://"):
        found["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return found

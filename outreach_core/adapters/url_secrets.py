"""Secrets in URLs: where a URL's credentials end, and the one masked form shown anywhere a
URL is shown (pages, logs, errors, the audit log, reports).

The credentials run from `://` to the LAST `@` of the part that can hold them: a password may
contain `@`, and a host never does. A URL whose text after `://` starts with `/` has no
credentials (`outbox:///path/with@sign`).

`mask_url` never raises and never needs the URL to be valid: it replaces the password (or, for
the kinds whose whole userinfo is a key, the userinfo), every password-like query parameter and
any fragment with `***`.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"

#: query parameters whose value is a secret (compared lower-case, `-` read as `_`)
SECRET_PARAMETERS = frozenset(
    {
        "password",
        "pass",
        "passwd",
        "pwd",
        "secret",
        "token",
        "key",
        "api_key",
        "apikey",
        "access_key",
        "secret_key",
        "access_token",
        "auth",
        "auth_token",
        "client_secret",
        "sslpassword",
        "sslkey_password",
        "signature",
        "sig",
    }
)
#: names ending so are secrets too (aws_secret_access_key, x_api_key, refresh_token…)
_SECRET_SUFFIXES = ("password", "secret", "_token", "_key", "apikey", "_pwd")
#: a connection string inside a value (`odbc_connect=…;PWD=…`) hides its secret there
_EMBEDDED_SECRET = re.compile(r"(?:^|[;&\s])(?:pwd|password|secret|token)\s*=", re.IGNORECASE)

#: the kinds whose userinfo is an API key as a whole (`sendgrid://KEY@`), not user[:password]
KEY_ONLY_SCHEMES = frozenset({"sendgrid", "mailgun"})
#: characters that end a URL's host part: raw in a user name, the credentials cannot be read
DELIMITERS = "/?#"


def is_secret_parameter(name: str) -> bool:
    """Whether a query parameter of this name carries a secret."""
    key = unquote(name).strip().lower().replace("-", "_")
    return key in SECRET_PARAMETERS or key.endswith(_SECRET_SUFFIXES)


def split_credentials(url: str) -> tuple[str, str | None, str]:
    """`(scheme, userinfo, rest)`: the userinfo runs from `://` to the last `@` (None when the
    URL has none) and `rest` is what follows it (host, port, path, query, fragment). Raw text:
    nothing is decoded. A URL without `://` is `("", None, url)`."""
    scheme, sep, tail = url.partition("://")
    if not sep:
        return "", None, url
    if tail.startswith("/"):  # an empty host: no place for credentials
        return scheme, None, tail
    at = tail.rfind("@")
    if at < 0:
        return scheme, None, tail
    return scheme, tail[:at], tail[at + 1 :]


def _mask_userinfo(scheme: str, userinfo: str) -> str:
    user, colon, _ = userinfo.partition(":")
    if scheme.lower() in KEY_ONLY_SCHEMES or any(c in user for c in DELIMITERS + "@"):
        return MASK
    return f"{user}:{MASK}" if colon else user


def _mask_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        if equals and (is_secret_parameter(name) or _EMBEDDED_SECRET.search(unquote(value))):
            value = MASK
        elif equals and "://" in unquote(value):
            inner = unquote(value)
            if mask_url(inner) != inner:  # an endpoint with credentials in it
                value = mask_url(inner)
        pairs.append(f"{name}{equals}{value}")
    return "&".join(pairs)


def _mask_rest(rest: str) -> str:
    rest, hash_sign, _ = rest.partition("#")
    where, question, query = rest.partition("?")
    masked = where + question + (_mask_query(query) if question else "")
    return masked + (f"#{MASK}" if hash_sign else "")


def mask_url(url: str) -> str:
    """The URL as it may be shown: the password (or API key) from `://` to the last `@`, the
    values of password-like query parameters and any fragment replaced by `***`."""
    scheme, userinfo, rest = split_credentials(url)
    if not scheme:
        # not a URL: whatever precedes an `@` may be credentials
        before, at, after = url.rpartition("@")
        return f"{MASK}@{_mask_rest(after)}" if at and before else _mask_rest(url)
    if userinfo is None:
        authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
        port = authority.rpartition(":")[2] if ":" in authority.lstrip("[") else ""
        if port and not port.isdigit():
            # `user:password` with the host forgotten: the "port" (and any path after it)
            # is the password
            query = rest.partition("#")[0].partition("?")[2]
            return f"{scheme}://{MASK}" + (f"?{_mask_query(query)}" if query else "")
        return f"{scheme}://{_mask_rest(rest)}"
    return f"{scheme}://{_mask_userinfo(scheme, userinfo)}@{_mask_rest(rest)}"


def secret_texts(url: str) -> list[str]:
    """Every secret a URL holds, raw and percent-decoded, longest first: to scrub messages
    (a server or library may echo one back). Values under 3 characters are left out."""
    scheme, userinfo, rest = split_credentials(url)
    found: list[str] = []
    if userinfo is not None:
        user, colon, password = userinfo.partition(":")
        found += [password] if colon else []
        if scheme.lower() in KEY_ONLY_SCHEMES:
            found.append(userinfo)  # the API key
        elif scheme.lower() == "ses":
            found.append(user)  # the access key id goes with the secret
    query = rest.partition("#")[0].partition("?")[2]
    for pair in query.split("&") if query else []:
        name, _, value = pair.partition("=")
        if is_secret_parameter(name) or _EMBEDDED_SECRET.search(unquote(value)):
            found.append(value)
    found += [unquote(value) for value in found]
    return sorted({value for value in found if len(value) >= 3}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """`text` with every secret of `url` replaced by `***`."""
    for secret in secret_texts(url):
        text = text.replace(secret, MASK)
    return text

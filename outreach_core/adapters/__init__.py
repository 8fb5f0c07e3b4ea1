"""Adapters: everything that talks to the world outside the process.

`store/` (tables, migrations, one module of queries per aggregate), `senders/` (one provider per
file), DNS lookups (`dns`, `sender_domain`), the SQL source runner, IMAP addresses, provider
webhook payloads, contact files, the secret cipher, settings and the workspace that holds the
database and the cipher. Adapters import `domain` and `errors`, never `services` or entrypoints.
"""

"""Entrypoints: how the outside starts the use cases.

The CLI (`python -m outreach_core`, `outreach`), the daemon's tick (run by
`scheduler_daemon.py`), its HTTP API (unsubscribe links, provider webhooks, triggers) and the
signal handling they share. Each parses its input, calls `services`, and reports. The dashboard's
entrypoint is `outreach_core/ui/` with `Home.py` and `pages/`.
"""

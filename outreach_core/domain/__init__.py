"""Domain: the decisions, with no I/O.

Models and states, cadences and send windows, planning a run's deliveries, templates and the
messages built from them, address rules, retry and rate-limit policies, engine rotation, the
complaint brake, unsubscribe links and checks, access rules and form models. Modules here import
the standard library, pydantic and pure libraries (jinja2, email-validator), and nothing of the
project outside `domain` and `errors`; each takes the time (`now`) or a `Clock` as an argument.
"""

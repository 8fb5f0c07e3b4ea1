"""The store: every table declared once (`tables`), Alembic migrations (`migrations/`), the engine
and upgrade (`db`), and one module of queries per aggregate (runs, deliveries, workflows,
engines, audiences, templates, schedules, suppressions, ...). Functions take a SQLAlchemy
`Connection` in the caller's transaction; services open the transaction.
"""

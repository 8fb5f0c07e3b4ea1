"""A workflow whose audience is a SQL source over a `people` table, for the freeze tests and
the freeze's memory check: the table's rows are `n`, `email` (person<n>@example.com unless
given) and `name` (empty where a render error is wanted)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from outreach_core import services
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import Run, SendOptions
from outreach_core.domain.templating import TemplateSource
from outreach_core.services import sources
from outreach_core.services.sending import new_worker_id, workers

ACTOR = "test"
#: the rows up to `:upto` (the audience is saved with a few, runs read them all)
QUERY = "SELECT n, email, name FROM people WHERE n <= CAST(:upto AS INTEGER) ORDER BY n"


def source_url(ws: Workspace, tmp_path: Path) -> str:
    """A SQLite file beside a SQLite workspace; the workspace's own schema on PostgreSQL."""
    if ws.db.dialect.name == "sqlite":
        return f"sqlite:///{tmp_path / 'crm.db'}"
    return ws.db.url.render_as_string(hide_password=False)


def fill_people(
    url: str, count: int, *, emails: dict[int, str], names: dict[int, str], pad: int = 0
) -> None:
    """`count` rows; `emails` and `names` replace the default of some rows; `pad` characters
    more in every default name (rows that weigh in memory without costing rows)."""
    tail = " " + "x" * pad if pad else ""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE people (n INTEGER, email TEXT, name TEXT)"))
        for start in range(1, count + 1, 10_000):
            conn.execute(
                sa.text("INSERT INTO people VALUES (:n, :e, :m)"),
                [
                    {
                        "n": n,
                        "e": emails.get(n, f"person{n}@example.com"),
                        "m": names.get(n, f"Person {n}{tail}"),
                    }
                    for n in range(start, min(start + 10_000, count + 1))
                ],
            )
    engine.dispose()


def sql_workflow(
    ws: Workspace, tmp_path: Path, url: str, options: SendOptions, *, query: str = QUERY
) -> tuple[int, int]:
    """(workflow id, source id): the audience saved with 5 rows, the source then set to read
    every row; the template needs `name`."""
    source = sources.save_source(
        ws, name="crm", url=url, query=query, values={"upto": "5"}, actor=ACTOR
    )
    audience = sources.save_recurring_audience(ws, source.id, name="people", actor=ACTOR)
    set_source(ws, url, query=query)
    template = services.save_template(
        ws, "hello", TemplateSource("Hi {{ name }}", None, "Hello {{ name }}"), actor=ACTOR
    )
    engine = services.save_engine(
        ws, name="outbox", url=f"outbox://{tmp_path}/outbox",
        from_email="team@example.com", from_name="Team", actor=ACTOR,
    )  # fmt: skip
    workflow = services.create_workflow(
        ws, name="people", audience_id=audience.id, template_id=template.id,
        engine_id=engine.id, options=options, actor=ACTOR,
    )  # fmt: skip
    return workflow.id, source.id


def set_source(
    ws: Workspace, url: str, *, query: str = QUERY, row_cap: int = sources.DEFAULT_ROW_CAP
) -> None:
    """The source reads every row (`:upto` past any), under `row_cap`."""
    sources.save_source(
        ws, name="crm", url=url, query=query, values={"upto": "999999999"},
        row_cap=row_cap, actor=ACTOR,
    )  # fmt: skip


def acquired_run(ws: Workspace, workflow_id: int) -> Run:
    """A queued run of the workflow, held by a new worker (INITIALIZING)."""
    run_id = services.queue_run(ws, workflow_id, trigger="test", actor=ACTOR)
    return workers.acquire_run(ws, run_id, worker_id=new_worker_id())

"""Units of work started from the event loop wait for a connection slot before they take a thread or a
pooled connection. Without it a burst on PostgreSQL deadlocked until the pool's timeout: every worker
thread waited for a pooled connection while the requests holding the connections waited for a thread
to run their next step."""

from __future__ import annotations

import anyio
import pytest
from anyio import to_thread
from sqlalchemy import create_engine, text

from carerelay.core.db import Database, normalize_url
from tests.conftest import Backend


def test_a_burst_bigger_than_the_pool_and_the_threads_completes(backend: Backend) -> None:
    if backend.name != "postgresql":
        pytest.skip("SQLite's requests take turns in one write group; no pool to run out of")
    engine = create_engine(normalize_url(backend.url), pool_size=2, max_overflow=0, pool_timeout=5)
    db = Database(engine)
    done: list[int] = []

    async def request(n: int) -> None:
        async with db.unit_of_work_async() as session:  # two steps in two threads, as a request's policy and route
            await to_thread.run_sync(lambda: session.execute(text("SELECT 1")).scalar_one())
            await anyio.sleep(0)
            await to_thread.run_sync(lambda: session.execute(text("SELECT pg_sleep(0.01)")).scalar_one())
        done.append(n)

    async def burst() -> None:
        to_thread.current_default_thread_limiter().total_tokens = 3  # fewer threads than requests, as under load
        async with anyio.create_task_group() as group:
            for n in range(12):
                group.start_soon(request, n)

    try:
        anyio.run(burst)
    finally:
        engine.dispose()
    assert sorted(done) == list(range(12))

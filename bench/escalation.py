"""Escalation timers (issue 5): 100,000 pending timers; fire time minus due time p50/p99 (target
p99 < 1 s) and the rate timers are processed.

A real database (SQLite, WAL, synchronous=FULL, the default; PostgreSQL when reachable) with the demo
hospital. Alerts are raised through the alerts service, so each has a real escalation run whose next
step is a durable timer; the benchmark then moves those step timers into the measured window and
runs the worker's loop (``jobs.fire_due`` every 0.2 s on ``jobs.firing_threads`` threads, as
``carerelay serve`` does) on the system
clock. Every fired step is the real one: lock the run, check its token, resolve the next address,
notify (alert recipients, trail, realtime event, audit), schedule the following step.

- backdrop: 100,000 pending timers due over the next 30 days (the table the worker searches);
- stream: alerts whose next step falls due at a steady rate for a few seconds → lag p50/p99;
- burst: alerts whose next step is due all at once → steps processed per second.

The floor, in the same run and database: one-row durable commits per second (insert, COMMIT),
the least one timer can cost, since each timer commits its effects in a transaction of its own.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import OperationalError

from bench.common import load_average, report, summarize_ms
from carerelay.alerts import service as alerts
from carerelay.config import Settings
from carerelay.core.actor import cli_actor
from carerelay.core.clock import SystemClock
from carerelay.core.db import Database, make_engine
from carerelay.core.migrate import upgrade
from carerelay.demo import load_demo
from carerelay.directory.models import Person
from carerelay.escalation.engine import STEP_TIMER
from carerelay.escalation.models import EscalationRun
from carerelay.jobs.models import Timer
from carerelay.jobs.service import fire_due, firing_threads

TICK_SECONDS = 0.2


def _raise(db: Database, count: int, tag: str) -> list[int]:
    clock, actor = SystemClock(), cli_actor("bench")
    ids = []
    with db.unit_of_work() as session:
        people = list(session.execute(select(Person.id).where(Person.active.is_(True)).order_by(Person.id)
                                      .limit(20)).scalars())
        for n in range(count):
            alert = alerts.raise_alert(session=session, clock=clock, actor=actor, kind="bench", priority="urgent",
                                       title=f"bench {tag} {n}", body="benchmark alert", source="bench",
                                       address=f"person:{people[n % len(people)]}")
            ids.append(alert.id)
    return ids


def _step_timers(db: Database, alert_ids: list[int]) -> list[int]:
    with db.read_only() as session:
        runs = select(EscalationRun.id).where(EscalationRun.alert_id.in_(alert_ids))
        rows = session.execute(select(Timer.id).where(Timer.kind == STEP_TIMER, Timer.fired_at.is_(None),
                                                      Timer.cancelled_at.is_(None),
                                                      Timer.params["run_id"].as_integer().in_(runs))
                               .order_by(Timer.id))
        return list(rows.scalars())


def _due(db: Database, timer_ids: list[int], first: datetime, spacing_s: float) -> None:
    with db.unit_of_work() as session:
        for n, timer_id in enumerate(timer_ids):
            session.execute(update(Timer).where(Timer.id == timer_id)
                            .values(due_at=first + timedelta(seconds=n * spacing_s)))


def _work_until(db: Database, timer_ids: list[int], deadline: float) -> float:
    """The worker's loop, with as many firing threads as a node has; returns when every given timer
    has fired (or at the deadline)."""
    clock = SystemClock()
    left = set(timer_ids)
    threads = firing_threads(db, Settings.model_fields["timer_threads"].default)  # a node's default
    pool = ThreadPoolExecutor(threads)
    while time.monotonic() < deadline:
        fired = sum(pool.map(lambda _: fire_due(db=db, clock=clock, limit=500), range(threads)))
        with db.read_only() as session:
            done = set(session.execute(select(Timer.id).where(Timer.id.in_(left), Timer.fired_at.is_not(None)))
                       .scalars())
        left -= done
        if not left:
            break
        if not fired:
            time.sleep(TICK_SECONDS)
    pool.shutdown()
    return time.monotonic()


def _lags(db: Database, timer_ids: list[int]) -> tuple[list[float], datetime | None, datetime | None]:
    with db.read_only() as session:
        rows = session.execute(select(Timer.due_at, Timer.fired_at).where(Timer.id.in_(timer_ids))).all()
    fired = [(due, at) for due, at in rows if at is not None]
    lags = [max(0.0, (at - due).total_seconds()) for due, at in fired]
    return lags, min((a for _, a in fired), default=None), max((a for _, a in fired), default=None)


def _backdrop(db: Database, count: int) -> None:
    now = datetime.now(UTC)
    batch: list[dict[str, Any]] = []
    for n in range(count):
        batch.append({"kind": STEP_TIMER, "key": f"bench:{n}", "params": {"run_id": 0, "token": 0},
                      "due_at": now + timedelta(days=1 + 29 * n / count), "created_at": now, "attempts": 0})
        if len(batch) == 10_000:
            with db.unit_of_work() as session:
                session.execute(insert(Timer), batch)
            batch = []
    if batch:
        with db.unit_of_work() as session:
            session.execute(insert(Timer), batch)


def _floor_commits(db: Database, seconds: float) -> tuple[float, list[float]]:
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_floor (at VARCHAR(40))"))
    samples = []
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        t0 = time.perf_counter()
        with db.unit_of_work() as session:
            session.execute(text("INSERT INTO bench_floor (at) VALUES (:at)"), {"at": str(t0)})
        samples.append(time.perf_counter() - t0)
    return len(samples) / seconds, samples


def run(url: str, label: str, backdrop: int, stream: int, rate: float, burst: int) -> None:
    load_before = load_average()
    db = Database(make_engine(url))
    upgrade(db.engine)
    with db.unit_of_work() as session:
        load_demo(session=session, clock=SystemClock(), actor=cli_actor("bench"))
    _backdrop(db, backdrop)
    stream_ids = _step_timers(db, _raise(db, stream, "stream"))
    burst_ids = _step_timers(db, _raise(db, burst, "burst"))
    if db.dialect == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    with db.read_only() as session:
        pending = session.execute(select(func.count()).select_from(Timer)
                                  .where(Timer.fired_at.is_(None), Timer.cancelled_at.is_(None))).scalar_one()
    floor_rate, floor_samples = _floor_commits(db, 3.0)

    # stream: steps fall due at a steady rate, starting shortly
    first = datetime.now(UTC) + timedelta(seconds=1)
    _due(db, stream_ids, first, 1 / rate)
    _work_until(db, stream_ids, time.monotonic() + stream / rate + 120)
    stream_lags, _, _ = _lags(db, stream_ids)

    # burst: all due at once; the rate is how fast the worker works through them
    _due(db, burst_ids, datetime.now(UTC), 0.0)
    started = time.monotonic()
    ended = _work_until(db, burst_ids, started + 600)
    burst_lags, _, _ = _lags(db, burst_ids)
    db.engine.dispose()

    metrics: dict[str, float] = {
        "pending_timers": float(pending),
        **summarize_ms(stream_lags, "stream_lag"),
        "stream_offered_per_s": rate,
        "stream_fired": float(len(stream_lags)),
        "burst_timers": float(burst),
        "burst_processed_per_s": round(len(burst_lags) / max(ended - started, 1e-9), 1),
        **summarize_ms(burst_lags, "burst_lag"),
    }
    floor = {"burst_processed_per_s": round(floor_rate, 1)}
    floor_ms = summarize_ms(floor_samples, "commit")
    report(f"escalation-{label}", database=label, metrics=metrics, floor=floor, load_before=load_before,
           targets={"stream_lag_p99_ms": "< 1000"},
           notes="real escalation steps (resolve, notify, trail, realtime event, audit, next timer), one "
                 "transaction each, fired by the worker loop on the system clock; lag = fired_at - due_at as "
                 "stored. floor: one-row durable commits per second on the same database "
                 f"(commit p50 {floor_ms['commit_p50_ms']} ms, p99 {floor_ms['commit_p99_ms']} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backdrop", type=int, default=100_000)
    parser.add_argument("--stream", type=int, default=500, help="step timers in the steady stream")
    parser.add_argument("--rate", type=float, default=50.0, help="steps falling due per second in the stream")
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{Path(tmp) / 'bench.db'}", "sqlite", args.backdrop, args.stream, args.rate, args.burst)
    try:
        schema = f"bench_{secrets.token_hex(3)}"
        admin = make_engine(args.postgres)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        try:
            url = f"{args.postgres}?options=-csearch_path%3D{schema}"
            run(url, "postgresql", args.backdrop, args.stream, args.rate, args.burst)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    except OperationalError as exc:
        print(f"PostgreSQL leg skipped: {type(exc).__name__}: {str(exc).splitlines()[0]}")


if __name__ == "__main__":
    main()

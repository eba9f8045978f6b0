"""CPU per message of the two hot write paths, measured in one process: what a shared machine cannot blur.

Wall-clock benchmarks (bench/hl7.py, bench/messaging.py) need a quiet machine. This measures what a
message costs in CPU time (``time.process_time``: every thread of this process) and in statements,
which other work on the machine changes far less, and with ``--profile`` prints where the time goes.

    .venv/bin/python -m bench.cpu hl7 [--messages 2000] [--profile]
    .venv/bin/python -m bench.cpu messaging [--messages 1000] [--profile] [--postgres URL]
    .venv/bin/python -m bench.cpu messaging-server [--rate 100] [--seconds 5] [--profile]
    .venv/bin/python -m bench.cpu wctp [--messages 500] [--concurrency 4] [--profile]

hl7: the listener's own store and processing steps (``Hl7Runtime._store_sync`` in groups of
``--batch`` frames, as four senders' frames arrive, then ``_process_sync`` in its batches), then the
whole listener over real MLLP sockets, the senders in a child process (ACK and processing included).
messaging: ``POST /api/conversations/{id}/messages`` through the application in this process (sign-in
check, the send, the response, the after-commit hand-over to the hub), ``--concurrency`` at a time, and
what each recipient's WebSocket does for it: take the handed-over event and encode its frame (every
message), and check that its session is still a delivery target (once per check window, not per message).
messaging-server: the whole server (uvicorn, WebSockets, background workers) in this process, the
load of bench/messaging.py (200 clients, a fixed rate) in a child: CPU per delivered message.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, event, text

from bench.asgi import call
from bench.common import node_env
from bench.hl7 import END, ORU, START, _free_port

T = TypeVar("T")


@contextmanager
def _counting(engine: Engine) -> Iterator[list[int]]:
    seen = [0]

    def count(*_: Any) -> None:
        seen[0] += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


class Profiler:
    """cProfile in every thread (the route and the commit run in worker threads), merged at the end.

    Threads started after ``start`` are profiled from their first call: the harness starts it before
    the application creates its worker threads, so the warm-up is in the profile too.
    """

    def __init__(self) -> None:
        self._profiles: list[cProfile.Profile] = []

    def start(self) -> None:
        def first_call(*_: Any) -> None:
            sys.setprofile(None)
            profile = cProfile.Profile(time.thread_time)
            self._profiles.append(profile)
            profile.enable()

        threading.setprofile(first_call)
        main = cProfile.Profile(time.thread_time)
        self._profiles.append(main)
        main.enable()

    def stop(self, label: str) -> None:
        threading.setprofile(None)
        self._profiles[0].disable()
        out = io.StringIO()
        stats = pstats.Stats(*self._profiles, stream=out)
        by_package: dict[str, float] = {}
        for (filename, _, name), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
            by_package[_package(filename, name)] = by_package.get(_package(filename, name), 0.0) + own
        total = sum(by_package.values()) or 1.0
        stats.strip_dirs()
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(60)
        print(f"--- profile of {label} (all threads)\n{out.getvalue()}")
        print(f"--- own time by package, {label}")
        for package, own in sorted(by_package.items(), key=lambda kv: -kv[1])[:25]:
            print(f"{package:<40}{100 * own / total:6.1f} %")
        self._profiles = []


def _package(filename: str, name: str) -> str:
    """Where a function lives, coarsely: carerelay.<domain>, a library, or a built-in's name."""
    if filename == "~":
        return f"builtin {name.split(' of ')[0].strip('{}<>')}"[:40]
    parts = Path(filename).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    if "carerelay" in parts:
        rest = parts[parts.index("carerelay") + 1:]
        return "carerelay." + (rest[0] if len(rest) > 1 else Path(rest[0]).stem)
    return Path(filename).stem


class Meter:
    """CPU time and statements per message of each phase."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rows: list[tuple[str, float, float, int]] = []

    def run(self, label: str, count: int, work: Callable[[], Any]) -> None:
        with self.measure(label, count):
            work()

    @contextmanager
    def measure(self, label: str, count: int) -> Iterator[None]:
        with _counting(self.engine) as seen:
            started = time.process_time()
            yield
            cpu = time.process_time() - started
        self.rows.append((label, 1000 * cpu / count, seen[0] / count, count))

    def print(self, title: str) -> None:
        print(f"\n{title}")
        print(f"{'phase':<44}{'CPU ms/msg':>12}{'statements/msg':>16}{'messages':>10}")
        for label, ms, statements, count in self.rows:
            print(f"{label:<44}{ms:>12.3f}{statements:>16.2f}{count:>10}")


@contextmanager
def _database(tmp: str, postgres: str | None = None) -> Iterator[tuple[str, Any]]:
    """The demo hospital on a SQLite file in ``tmp``, or in a schema of its own on ``postgres``."""
    from carerelay.core.actor import cli_actor
    from carerelay.core.clock import SystemClock
    from carerelay.core.db import Database, make_engine
    from carerelay.core.migrate import upgrade
    from carerelay.demo import load_demo

    url = f"sqlite:///{Path(tmp) / 'cpu.db'}"
    if postgres:
        schema = f"cpu_{Path(tmp).name.lower().replace('-', '_')}"
        with make_engine(postgres).begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = f"{postgres}?options=-csearch_path%3D{schema}"
    db = Database(make_engine(url))
    upgrade(db.engine)
    with db.unit_of_work() as session:
        load_demo(session=session, clock=SystemClock(), actor=cli_actor("bench"))
    try:
        yield url, db
    finally:
        db.engine.dispose()
        if postgres:
            with make_engine(postgres).begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


# ------------------------------------------------------------------ hl7


def _oru(prefix: str, n: int) -> bytes:
    critical = n % 50 == 0
    return ORU.format(control=f"{prefix}-{n}", mrn=f"BENCH{(n * 7919) % 500:04d}", n=n, k="6.8" if critical else "4.1",
                      flag="HH" if critical else "N").encode()


def hl7_service(messages: int, batch: int, profile: bool) -> None:
    from carerelay.config import load_settings
    from carerelay.core.clock import SystemClock
    from carerelay.integrations.hl7.listener import Hl7Runtime
    from carerelay.integrations.hl7.store import Inbound

    with tempfile.TemporaryDirectory() as tmp, _database(tmp) as (url, db):
        runtime = Hl7Runtime(db=db, settings=load_settings(database_url=url, mllp_port=0), clock=SystemClock())
        feed = runtime.feeds[0]
        meter = Meter(db.engine)

        def store(prefix: str, count: int) -> None:
            items = [Inbound(feed, _oru(prefix, n), "127.0.0.1:1") for n in range(count)]
            for i in range(0, count, batch):
                runtime._store_sync(items[i:i + batch])

        def process() -> None:
            while runtime._process_sync(runtime.process_batch):
                pass

        store("W", 200)  # warm-up: patients created, caches and statement caches filled
        process()
        for label, work in ((f"store (groups of {batch})", lambda: store("M", messages)),
                            (f"process (batches of {runtime.process_batch})", process)):
            profiler = Profiler() if profile else None
            if profiler is not None:
                profiler.start()
            meter.run(label, messages, work)
            if profiler is not None:
                profiler.stop(label)
        meter.print(f"hl7, service level, SQLite, {messages} ORU^R01")


async def _mllp_senders(port: int, senders: int, per_sender: int) -> None:
    async def one(index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for n in range(per_sender):
            writer.write(START + _oru(f"S{index}", n) + END)
            await writer.drain()
            ack = await reader.readuntil(END)
            if b"MSA|AA|" not in ack:
                raise RuntimeError(f"not accepted: {ack!r}")
        writer.close()

    await asyncio.gather(*(one(i) for i in range(senders)))


def hl7_listener(messages: int, senders: int, profile: bool) -> None:
    """The whole listener in this process; the senders (a child process) are not counted."""
    from sqlalchemy import func, select

    from carerelay.config import load_settings
    from carerelay.core.clock import SystemClock
    from carerelay.integrations.hl7.listener import Hl7Runtime
    from carerelay.integrations.hl7.models import Hl7Message

    with tempfile.TemporaryDirectory() as tmp, _database(tmp) as (url, db):

        async def main() -> tuple[float, int, float]:
            settings = load_settings(database_url=url, mllp_port=_free_port(), mllp_host="127.0.0.1")
            runtime = Hl7Runtime(db=db, settings=settings, clock=SystemClock())
            await runtime.start()
            try:
                with _counting(db.engine) as seen:
                    started, wall = time.process_time(), time.perf_counter()
                    child = await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "bench.cpu", "--send-to", str(runtime.ports["default"]),
                        "--senders", str(senders), "--messages", str(messages // senders))
                    await child.wait()
                    while True:
                        with db.unit_of_work() as session:
                            left = session.execute(select(func.count()).select_from(Hl7Message)
                                                   .where(Hl7Message.status == "received")).scalar_one()
                        if not left:
                            break
                        await asyncio.sleep(0.05)
                    return time.process_time() - started, seen[0], time.perf_counter() - wall
            finally:
                await runtime.stop()

        profiler = Profiler() if profile else None
        if profiler is not None:
            profiler.start()
        cpu, statements, wall = asyncio.run(main())
        if profiler is not None:
            profiler.stop("the whole listener")
        total = (messages // senders) * senders
        print(f"\nhl7, whole listener (MLLP, {senders} senders, ACK + processing), SQLite, {total} ORU^R01")
        print(f"CPU ms/msg {1000 * cpu / total:.3f}   statements/msg {statements / total:.2f}   "
              f"(wall {wall:.1f} s, not meaningful on a shared machine)")


# ------------------------------------------------------------------ messaging


async def _bursts(post: Callable[[int], Awaitable[None]], start: int, count: int, concurrency: int) -> None:
    """Requests ``start`` … ``start + count - 1``, ``concurrency`` at a time."""
    for first in range(start, start + count, concurrency):
        await asyncio.gather(*(post(i) for i in range(first, min(first + concurrency, start + count))))
    await asyncio.sleep(0)


def _run_profiled(main: Callable[[], Coroutine[Any, Any, T]], profiler: Profiler | None, label: str) -> T:
    from carerelay.core.collector import settle_after_start

    settle_after_start()  # the collector as ``carerelay serve`` tunes it
    if profiler is not None:
        profiler.start()  # before the application's worker threads exist: the warm-up is in it too
    result = asyncio.run(main())
    if profiler is not None:
        profiler.stop(label)
    return result


def messaging_app(messages: int, concurrency: int, profile: bool, postgres: str | None) -> None:
    from sqlalchemy import select

    from carerelay.app import create_app
    from carerelay.auth.service import start_session
    from carerelay.config import load_settings
    from carerelay.core.actor import Actor
    from carerelay.core.clock import SystemClock
    from carerelay.directory.models import Person
    from carerelay.messaging import service as messaging
    from carerelay.messaging.models import ConversationKind
    from carerelay.realtime import api as realtime_api
    from carerelay.realtime.hub import Subscription

    with tempfile.TemporaryDirectory() as tmp, _database(tmp, postgres) as (url, db):
        keys = "b1:" + "A" * 43 + "="
        settings = load_settings(database_url=url, mllp_port=0, attachment_keys=keys, run_timers=False)
        clock = SystemClock()
        pairs: list[tuple[str, int, Actor]] = []  # sender token, conversation, recipient (with its session)
        with db.unit_of_work() as session:
            people = list(session.execute(select(Person).where(Person.active.is_(True)).order_by(Person.id)
                                          .limit(40)).scalars())
            for a, b in zip(people[0::2], people[1::2], strict=False):
                token = start_session(session=session, clock=clock, settings=settings, person=a, kind="api",
                                      ip=None, user_agent="bench", method="bench").token
                other = start_session(session=session, clock=clock, settings=settings, person=b, kind="api",
                                      ip=None, user_agent="bench", method="bench")
                conv = messaging.create_conversation(session=session, clock=clock,
                                                     actor=Actor(person_id=a.id, username=a.username),
                                                     kind=ConversationKind.DIRECT, member_ids=[b.id])
                pairs.append((token, conv.id, Actor(person_id=b.id, username=b.username,
                                                    session_id=other.session.id)))
        app = create_app(settings, db=db, clock=clock)
        hub = app.state.hub
        meter = Meter(db.engine)
        profiler = Profiler() if profile else None

        async def main() -> None:
            hub.bind(asyncio.get_running_loop())

            async def post(i: int) -> None:
                token, conv, _ = pairs[i % len(pairs)]
                status, body = await call(app, "POST", f"/api/conversations/{conv}/messages",
                                          json.dumps({"text": f"bench {i}"}).encode(),
                                          {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                if status != 201:
                    raise RuntimeError(body.decode(errors="replace"))

            await _bursts(post, 0, 100, concurrency)
            with meter.measure(f"send over HTTP (in-process ASGI), {concurrency} at a time", messages):
                await _bursts(post, 100, messages, concurrency)

        _run_profiled(main, profiler, "send over HTTP")

        recipients = [actor for _, _, actor in pairs]

        def frames() -> None:
            subscription = Subscription(recipients[0].person_id or 0)
            for i in range(messages):
                subscription.push(i + 1, "message.new", {"text": f"bench {i}"})
                taken, _ = subscription.take()
                subscription.cursor = i + 1
                json.dumps(taken[0])

        def checks() -> None:
            for i in range(messages):
                realtime_api._live_until(db, clock, settings, recipients[i % len(recipients)])

        meter.run("recipient socket: hand-over + frame", messages, frames)
        meter.run("recipient socket: one session check", messages, checks)
        meter.print(f"messaging, {db.dialect}, {messages} sends")


def wctp_app(messages: int, concurrency: int, profile: bool) -> None:
    """``POST /wctp`` nurse-call SubmitRequests through the application in this process (the requests of
    bench/wctp.py), ``--concurrency`` at a time: the alert to the bed's nurse and its hand-over to the hub."""

    from bench.wctp import prepare, submit
    from carerelay.app import create_app
    from carerelay.config import load_settings
    from carerelay.core.clock import SystemClock
    from carerelay.core.db import Database, make_engine

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'cpu.db'}"
        prepare(url)
        db = Database(make_engine(url))
        settings = load_settings(database_url=url, mllp_port=0, attachment_keys="b1:" + "A" * 43 + "=",
                                 run_timers=False)
        app = create_app(settings, db=db, clock=SystemClock())
        meter = Meter(db.engine)
        profiler = Profiler() if profile else None

        async def main() -> None:
            app.state.hub.bind(asyncio.get_running_loop())

            async def post(i: int) -> None:
                _, body = await call(app, "POST", "/wctp", submit(f"MARK-{i:032d}"), {"Content-Type": "text/xml"})
                if b'successCode="200"' not in body:
                    raise RuntimeError(body.decode(errors="replace"))

            await _bursts(post, 0, 50, concurrency)
            with meter.measure(f"SubmitRequest over HTTP (in-process ASGI), {concurrency} at a time", messages):
                await _bursts(post, 50, messages, concurrency)

        _run_profiled(main, profiler, "SubmitRequest over HTTP")
        meter.print(f"wctp, SQLite, {messages} submits")
        db.engine.dispose()


def messaging_server(rate: int, seconds: float, profile: bool) -> None:
    """``carerelay serve``'s application under uvicorn in this process, 200 WebSocket clients and the
    load from bench/messaging.py in a child process: the server's CPU per delivered message."""
    import uvicorn

    from bench.messaging import prepare
    from carerelay.app import create_app
    from carerelay.config import load_settings
    from carerelay.core.db import Database, make_engine

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        clients = prepare(url)
        (Path(tmp) / "clients.json").write_text(json.dumps(clients))
        port = _free_port()
        os.environ.update(node_env(url, port))
        settings = load_settings()
        db = Database(make_engine(url, sqlite_synchronous=settings.sqlite_synchronous))
        config = uvicorn.Config(create_app(settings, db=db, listeners=True), host="127.0.0.1", port=port,
                                log_config=None, ws_per_message_deflate=False)
        server = uvicorn.Server(config)
        profiler = Profiler() if profile else None

        async def main() -> dict[str, float]:
            serving = asyncio.create_task(server.serve())
            while not server.started:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.cpu", "--load-messaging", f"http://127.0.0.1:{port}",
                str(Path(tmp) / "clients.json"), str(rate), str(seconds), stdout=asyncio.subprocess.PIPE)
            out, _ = await child.communicate()
            server.should_exit = True
            await serving
            stats: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
            return stats

        stats = _run_profiled(main, profiler, "the server")
        cpu = stats["server_cpu_s"]  # from the first send to the last arrival: the sockets' connecting left out
        delivered = rate * seconds - stats["lost"]
        print(f"\nmessaging server (uvicorn, 200 WebSocket clients), SQLite, {rate}/s offered for {seconds} s")
        print(f"server CPU ms per delivered message {1000 * cpu / max(delivered, 1):.3f}   delivered/s "
              f"{stats['delivered_per_s']}   p99 {stats['send_to_receive_p99_ms']:.1f} ms   lost {stats['lost']:.0f}"
              f"   errors {stats['errors']:.0f}   (latencies are not meaningful on a shared machine)")
        db.engine.dispose()


def _load_messaging(base: str, clients_file: str, rate: int, seconds: float) -> None:
    from bench.messaging import run_carerelay

    clients = [tuple(c) for c in json.loads(Path(clients_file).read_text())]
    print(json.dumps(asyncio.run(run_carerelay(base, clients, rate, seconds, server_pid=os.getppid()))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?", choices=["hl7", "messaging", "messaging-server", "wctp"])
    parser.add_argument("--rate", type=int, default=100, help="messaging-server: sends per second offered")
    parser.add_argument("--seconds", type=float, default=5.0, help="messaging-server: how long")
    parser.add_argument("--messages", type=int, default=0)
    parser.add_argument("--batch", type=int, default=4, help="hl7: frames stored per transaction")
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--concurrency", type=int, help="messaging (8) and wctp (4): requests in flight")
    parser.add_argument("--postgres", metavar="URL", help="messaging: on this PostgreSQL (a schema of its own)")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions per phase")
    parser.add_argument("--no-listener", action="store_true", help="hl7: service level only")
    parser.add_argument("--send-to", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--load-messaging", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_messaging:
        base, clients_file, rate, seconds = args.load_messaging
        _load_messaging(base, clients_file, int(rate), float(seconds))
    elif args.send_to:
        asyncio.run(_mllp_senders(args.send_to, args.senders, args.messages))
    elif args.path == "hl7":
        hl7_service(args.messages or 2000, args.batch, args.profile)
        if not args.no_listener:
            hl7_listener(args.messages or 2000, args.senders, args.profile)
    elif args.path == "messaging":
        messaging_app(args.messages or 1000, args.concurrency or 8, args.profile, args.postgres)
    elif args.path == "wctp":
        wctp_app(args.messages or 500, args.concurrency or 4, args.profile)
    elif args.path == "messaging-server":
        messaging_server(args.rate, args.seconds, args.profile)
    else:
        parser.error("name a path: hl7, messaging, messaging-server or wctp")


if __name__ == "__main__":
    main()

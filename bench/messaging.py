"""Messaging: send → recipient-receives latency with 200 connected WebSocket clients (issue: messaging).

A real `carerelay serve` process; 200 clients (100 pairs of people, each pair in a direct
conversation) hold WebSockets; messages are POSTed at a fixed rate and timed until the recipient's
socket shows them. The floor, in the same run: a bare WebSocket echo on the same stack (uvicorn +
Starlette), 200 clients, the same rate, timed from send to echo. Target: p99 < 50 ms at 500 msg/s.

``--sweep 100,200,300,400,500`` runs the same load at each rate on one server instead (no floor) and
reports the highest rate whose p99 stays under 50 ms: the figure to plan a node by.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from websockets.asyncio.client import ClientConnection, connect

from bench.common import cpu_seconds, load_average, no_collector_pauses, node_env, report, stop, summarize_ms
from bench.http1 import HttpError, Pool
from carerelay.auth.service import start_session
from carerelay.config import load_settings
from carerelay.core.actor import Actor, cli_actor
from carerelay.core.clock import SystemClock
from carerelay.core.db import Database, make_engine
from carerelay.core.migrate import upgrade
from carerelay.demo import load_demo
from carerelay.directory import service as directory
from carerelay.directory.models import Department
from carerelay.messaging import service as messaging
from carerelay.messaging.models import ConversationKind
from tests.servers import free_port, wait_until_ready

CLIENTS = 200

ECHO_APP = textwrap.dedent('''
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute

    async def echo(ws):
        await ws.accept()
        while True:
            await ws.send_text(await ws.receive_text())

    app = Starlette(routes=[WebSocketRoute("/ws", echo)])
''')


Clients = list[tuple[str, int, int]]  # (token, person id, conversation id), as prepare() makes them


def prepare(url: str) -> Clients:
    """People, sessions and conversations for the clients: (token, person id, conversation id)."""
    db = Database(make_engine(url, sqlite_synchronous="FULL"))
    upgrade(db.engine)
    clock, actor = SystemClock(), cli_actor("bench")
    settings = load_settings(database_url=url)
    with db.unit_of_work() as session:
        load_demo(session=session, clock=clock, actor=actor)
        dept = session.execute(select(Department.id)).scalars().first()
        people = [directory.create_person(session=session, clock=clock, actor=actor, data={
            "username": f"bench{n}-{secrets.token_hex(2)}", "given_name": "Bench", "family_name": f"User{n}",
            "profession": "nurse", "department_id": dept, "roles": ["nurse"]}) for n in range(CLIENTS)]
        tokens = [start_session(session=session, clock=clock, settings=settings, person=p, kind="api", ip=None,
                               user_agent="bench", method="bench").token for p in people]
        pairs = []
        half = CLIENTS // 2
        for i in range(half):
            a, b = people[i], people[i + half]
            conv = messaging.create_conversation(session=session, clock=clock,
                                                 actor=Actor(person_id=a.id, username=a.username),
                                                 kind=ConversationKind.DIRECT, member_ids=[b.id])
            pairs.append((tokens[i], a.id, conv.id))
            pairs.append((tokens[i + half], b.id, conv.id))
    db.engine.dispose()
    return pairs


async def _drain(ws: ClientConnection, arrivals: dict[str, float]) -> None:
    async for raw in ws:
        frame = json.loads(raw)
        if frame.get("kind") == "message.new":
            marker = frame["data"]["text"]
            arrivals.setdefault(marker, time.perf_counter())


async def run_carerelay(base: str, clients: Clients, rate: int, seconds: float,
                        server_pid: int | None = None) -> dict[str, float]:
    """Sends at ``rate`` and times them to the recipients' sockets. With ``server_pid``, also the CPU the
    server and this process spent from the first send to the last arrival (``*_cpu_s``): connecting
    and signing in the 200 sockets is left out."""
    arrivals: dict[str, float] = {}
    sockets = []
    for token, _, _ in clients:
        ws = await connect(base.replace("http", "ws") + "/api/ws", additional_headers={
            "Authorization": f"Bearer {token}"}, max_queue=None)
        await ws.recv()
        sockets.append(ws)
    readers = [asyncio.create_task(_drain(ws, arrivals)) for ws in sockets]
    server_before = cpu_seconds(server_pid) if server_pid else 0.0
    generator_before = time.process_time()
    sent: dict[str, float] = {}
    errors = 0
    statuses: Counter[str] = Counter()
    http = Pool(base, 64)
    try:
        async def post(i: int) -> None:
            nonlocal errors
            token, _, conv = clients[(i * 2) % len(clients)]
            marker = f"bench-{i}"
            sent[marker] = time.perf_counter()
            try:
                answer = await http.request("POST", f"/api/conversations/{conv}/messages",
                                            json.dumps({"text": marker}).encode(),
                                            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            except HttpError as exc:
                errors += 1
                statuses[type(exc.__cause__).__name__] += 1
                return
            if answer.status != 201:
                errors += 1
                statuses[f"{answer.status} {answer.body[:240].decode(errors='replace')}"] += 1

        total = int(rate * seconds)
        started = time.perf_counter()
        tasks = []
        for i in range(total):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(i)))
        await asyncio.gather(*tasks)
        deadline = time.perf_counter() + 30
        while len([m for m in sent if m in arrivals]) < total - errors and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        elapsed = max(arrivals.values(), default=started) - started
    finally:
        await http.close()
    generator_cpu = time.process_time() - generator_before
    server_cpu = cpu_seconds(server_pid) - server_before if server_pid else 0.0
    for task in readers:
        task.cancel()
    for ws in sockets:
        await ws.close()
    latencies = [arrivals[m] - t for m, t in sent.items() if m in arrivals]
    stats = summarize_ms(latencies, "send_to_receive")
    stats["delivered_per_s"] = round(len(latencies) / elapsed, 1) if elapsed > 0 else 0.0
    stats["lost"] = float(total - len(latencies))
    stats["errors"] = float(errors)
    if server_pid:
        stats["server_cpu_s"], stats["load_generator_cpu_s"] = server_cpu, generator_cpu
    if statuses:
        print("errors seen:", dict(statuses.most_common(5)))
    return stats


async def run_echo(port: int, rate: int, seconds: float, server_pid: int) -> dict[str, float]:
    sockets = [await connect(f"ws://127.0.0.1:{port}/ws") for _ in range(CLIENTS)]
    arrivals: dict[str, float] = {}

    async def drain(ws: ClientConnection) -> None:
        async for raw in ws:
            arrivals.setdefault(str(raw), time.perf_counter())

    readers = [asyncio.create_task(drain(ws)) for ws in sockets]
    server_before = cpu_seconds(server_pid)
    sent: dict[str, float] = {}
    total = int(rate * seconds)
    started = time.perf_counter()
    for i in range(total):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        marker = f"echo-{i}"
        sent[marker] = time.perf_counter()
        await sockets[i % CLIENTS].send(marker)
    deadline = time.perf_counter() + 10
    while len(arrivals) < total and time.perf_counter() < deadline:
        await asyncio.sleep(0.02)
    elapsed = max(arrivals.values(), default=started) - started
    server_cpu = cpu_seconds(server_pid) - server_before
    for task in readers:
        task.cancel()
    for ws in sockets:
        await ws.close()
    stats = summarize_ms([arrivals[m] - t for m, t in sent.items() if m in arrivals], "send_to_receive")
    stats["delivered_per_s"] = round(len(arrivals) / elapsed, 1) if elapsed > 0 else 0.0
    stats["server_cpu_ms_per_message"] = round(1000 * server_cpu / max(total, 1), 3)
    return stats


def socket_frames(base: str) -> dict[str, float]:
    """The server's event frames so far by source (handed over by its commit, read from the database)."""
    found = {}
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        if line.startswith("carerelay_socket_frames_total{"):
            found[line.split('source="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
    return found


def serve(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    with log.open("w") as out:
        return subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, text=True)


P99_TARGET_MS = 50.0
TARGET_RATE = 500  # messages a second (issue 3)


@contextmanager
def carerelay_server(label: str, url: str, tmp: Path) -> Iterator[tuple[str, subprocess.Popen[str], Clients]]:
    """The bench's people and conversations on ``url``, and a ``carerelay serve`` process on them."""
    clients = prepare(url)
    port = free_port()
    log = tmp / f"server-{label}.log"
    server = serve([sys.executable, "-m", "carerelay", "serve"], node_env(url, port), log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base, server, log, timeout=180)
        time.sleep(1.0)
        yield base, server, clients
    finally:
        stop(server)


def measure(base: str, server: subprocess.Popen[str], clients: Clients, rate: int,
            seconds: float) -> dict[str, float]:
    """One run at ``rate``: latency, throughput, and the CPU the server and this load generator spent a message
    (on a 2-core machine the generator's share is the server's loss)."""
    frames_before = socket_frames(base)
    with no_collector_pauses():
        ours = asyncio.run(run_carerelay(base, clients, rate, seconds, server.pid))
    frames = {k: v - frames_before.get(k, 0.0) for k, v in socket_frames(base).items()}
    ours["socket_frames_read_pct"] = round(100 * frames.get("database", 0.0) / max(sum(frames.values()), 1), 1)
    delivered = max((rate * seconds) - ours["lost"], 1)
    ours["server_cpu_ms_per_message"] = round(1000 * ours.pop("server_cpu_s") / delivered, 3)
    ours["load_generator_cpu_ms_per_message"] = round(1000 * ours.pop("load_generator_cpu_s") / delivered, 3)
    return ours


def leg(label: str, url: str, tmp: Path, rate: int, seconds: float) -> None:
    load_before = load_average()
    echo_port = free_port()
    (tmp / "echo_app.py").write_text(ECHO_APP)
    echo = serve([sys.executable, "-m", "uvicorn", "echo_app:app", "--port", str(echo_port), "--log-level", "warning"],
                 {"PYTHONPATH": str(tmp)}, tmp / "echo.log")
    try:
        with carerelay_server(label, url, tmp) as (base, server, clients):
            ours = measure(base, server, clients, rate, seconds)
        with no_collector_pauses():
            floor = asyncio.run(run_echo(echo_port, rate, seconds, echo.pid))
    finally:
        stop(echo)
    metrics: dict[str, Any] = {**ours, "offered_rate_per_s": float(rate), "clients": float(CLIENTS)}
    report(f"messaging-{label}", database=label, metrics=metrics, load_before=load_before,
           floor={k: v for k, v in floor.items() if k in ours},
           targets={"send_to_receive_p99_ms": f"< {P99_TARGET_MS:g}", "delivered_per_s": f">= {rate}"},
           notes="floor: bare WebSocket echo (uvicorn + Starlette) with the same clients and rate; the load "
                 "generator shares the machine's cores with the server (and, on a shared machine, with "
                 "other work: see the load average)")


def sweep(label: str, url: str, tmp: Path, rates: list[int], seconds: float) -> None:
    """The same load at rising rates on one warm server: the highest rate whose p99 stays under the target
    is what one node of this size can be planned for."""
    load_before = load_average()
    runs: dict[int, dict[str, float]] = {}
    with carerelay_server(label, url, tmp) as (base, server, clients):
        for rate in sorted(rates):
            runs[rate] = measure(base, server, clients, rate, seconds)
            print(f"  {label} {rate:>5}/s: p50 {runs[rate]['send_to_receive_p50_ms']:.1f} ms, "
                  f"p99 {runs[rate]['send_to_receive_p99_ms']:.1f} ms, {runs[rate]['delivered_per_s']}/s delivered",
                  flush=True)
    highest = 0
    for rate, m in runs.items():  # in rising order: the rates below it must all have met the target too
        if m["send_to_receive_p99_ms"] >= P99_TARGET_MS or m["lost"] or m["delivered_per_s"] < 0.95 * rate:
            break
        highest = rate
    metrics: dict[str, Any] = {"highest_rate_p99_under_target": float(highest)}
    for rate, m in runs.items():
        for key in ("send_to_receive_p50_ms", "send_to_receive_p99_ms", "delivered_per_s", "server_cpu_ms_per_message",
                    "load_generator_cpu_ms_per_message"):
            metrics[f"{key}@{rate}"] = m[key]
    report(f"messaging-sweep-{label}", database=label, metrics=metrics, load_before=load_before, floor={},
           targets={"highest_rate_p99_under_target": f">= {TARGET_RATE}"},
           notes=f"one server, rates {', '.join(map(str, sorted(rates)))}/s for {seconds:g} s each; the highest "
                 f"rate up to which every p99 is under {P99_TARGET_MS:g} ms, nothing is lost and at least 95 % "
                 "is delivered")


@contextmanager
def postgres_schema(admin_url: str) -> Iterator[str]:
    """A schema of its own on ``admin_url``'s database, dropped afterwards: the URL that uses it."""
    schema = f"bench_{secrets.token_hex(3)}"
    admin = make_engine(admin_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{admin_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=TARGET_RATE)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sweep", metavar="RATES",
                        help="comma-separated rates (e.g. 100,200,300,400,500): the highest one whose p99 stays under "
                             f"{P99_TARGET_MS:g} ms, instead of one run at --rate")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    rates = [int(r) for r in args.sweep.split(",")] if args.sweep else None

    def run(label: str, url: str, tmp: Path) -> None:
        if rates:
            sweep(label, url, tmp, rates, args.seconds)
        else:
            leg(label, url, tmp, args.rate, args.seconds)

    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", Path(tmp))
    try:
        with postgres_schema(args.postgres) as url, tempfile.TemporaryDirectory() as tmp:
            run("postgresql", url, Path(tmp))
    except OperationalError as exc:
        print(f"PostgreSQL leg skipped: {str(exc).splitlines()[0]}")


if __name__ == "__main__":
    main()

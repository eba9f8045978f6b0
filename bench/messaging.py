"""Messaging: send → recipient-receives latency with 200 connected WebSocket clients (issue: messaging).

A real `carerelay serve` process; 200 clients (100 pairs of people, each pair in a direct
conversation) hold WebSockets; messages are POSTed at a fixed rate and timed until the recipient's
socket shows them. The floor, in the same run: a bare WebSocket echo on the same stack (uvicorn +
Starlette), 200 clients, the same rate, timed from send to echo. Target: p99 < 50 ms at 500 msg/s.
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
from pathlib import Path
from typing import Any

import httpx2 as httpx
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from websockets.asyncio.client import ClientConnection, connect

from bench.common import cpu_seconds, load_average, report, stop, summarize_ms
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


def prepare(url: str) -> list[tuple[str, int, int]]:
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


async def run_carerelay(base: str, clients: list[tuple[str, int, int]], rate: int, seconds: float) -> dict[str, float]:
    arrivals: dict[str, float] = {}
    sockets = []
    for token, _, _ in clients:
        ws = await connect(base.replace("http", "ws") + "/api/ws", additional_headers={
            "Authorization": f"Bearer {token}"}, max_queue=None)
        await ws.recv()
        sockets.append(ws)
    readers = [asyncio.create_task(_drain(ws, arrivals)) for ws in sockets]
    sent: dict[str, float] = {}
    errors = 0
    statuses: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
        async def post(i: int) -> None:
            nonlocal errors
            token, _, conv = clients[(i * 2) % len(clients)]
            marker = f"bench-{i}"
            sent[marker] = time.perf_counter()
            try:
                response = await http.post(f"/api/conversations/{conv}/messages", json={"text": marker},
                                           headers={"Authorization": f"Bearer {token}"})
            except httpx.TransportError as exc:
                errors += 1
                statuses[type(exc).__name__] += 1
                return
            if response.status_code != 201:
                errors += 1
                statuses[f"{response.status_code} {response.text[:240]}"] += 1

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
    for task in readers:
        task.cancel()
    for ws in sockets:
        await ws.close()
    latencies = [arrivals[m] - t for m, t in sent.items() if m in arrivals]
    stats = summarize_ms(latencies, "send_to_receive")
    stats["delivered_per_s"] = round(len(latencies) / elapsed, 1) if elapsed > 0 else 0.0
    stats["lost"] = float(total - len(latencies))
    stats["errors"] = float(errors)
    if statuses:
        print("errors seen:", dict(statuses.most_common(5)))
    return stats


async def run_echo(port: int, rate: int, seconds: float) -> dict[str, float]:
    sockets = [await connect(f"ws://127.0.0.1:{port}/ws") for _ in range(CLIENTS)]
    arrivals: dict[str, float] = {}

    async def drain(ws: ClientConnection) -> None:
        async for raw in ws:
            arrivals.setdefault(str(raw), time.perf_counter())

    readers = [asyncio.create_task(drain(ws)) for ws in sockets]
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
    for task in readers:
        task.cancel()
    for ws in sockets:
        await ws.close()
    stats = summarize_ms([arrivals[m] - t for m, t in sent.items() if m in arrivals], "send_to_receive")
    stats["delivered_per_s"] = round(len(arrivals) / elapsed, 1) if elapsed > 0 else 0.0
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


def leg(label: str, url: str, tmp: Path, rate: int, seconds: float) -> None:
    load_before = load_average()
    clients = prepare(url)
    port = free_port()
    keys = "b1:" + "A" * 43 + "="
    server = serve([sys.executable, "-m", "carerelay", "serve"], {
        "CARERELAY_DATABASE_URL": url, "CARERELAY_PORT": str(port), "CARERELAY_LOG_LEVEL": "WARNING",
        "CARERELAY_MLLP_PORT": "0", "CARERELAY_ATTACHMENT_KEYS": keys, "CARERELAY_TAP_PORT": "0",
        "CARERELAY_SNPP_PORT": "0", "CARERELAY_PAGER_SMTP_PORT": "0"}, tmp / f"server-{label}.log")
    echo_port = free_port()
    (tmp / "echo_app.py").write_text(ECHO_APP)
    echo = serve([sys.executable, "-m", "uvicorn", "echo_app:app", "--port", str(echo_port), "--log-level", "warning"],
                 {"PYTHONPATH": str(tmp)}, tmp / "echo.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base, server, tmp / f"server-{label}.log", timeout=180)
        time.sleep(1.0)
        cpu_before, frames_before = cpu_seconds(server.pid), socket_frames(base)
        ours = asyncio.run(run_carerelay(base, clients, rate, seconds))
        frames = {k: v - frames_before.get(k, 0.0) for k, v in socket_frames(base).items()}
        ours["socket_frames_read_pct"] = round(100 * frames.get("database", 0.0) / max(sum(frames.values()), 1), 1)
        delivered = (rate * seconds) - ours["lost"]
        ours["server_cpu_ms_per_message"] = round(1000 * (cpu_seconds(server.pid) - cpu_before)
                                                  / max(delivered, 1), 3)
        echo_cpu = cpu_seconds(echo.pid)
        floor = asyncio.run(run_echo(echo_port, rate, seconds))
        floor["server_cpu_ms_per_message"] = round(1000 * (cpu_seconds(echo.pid) - echo_cpu) / (rate * seconds), 3)
    finally:
        for process in (server, echo):
            stop(process)
    metrics: dict[str, Any] = {**ours, "offered_rate_per_s": float(rate), "clients": float(CLIENTS)}
    report(f"messaging-{label}", database=label, metrics=metrics, load_before=load_before,
           floor={k: v for k, v in floor.items() if k in ours},
           targets={"send_to_receive_p99_ms": "< 50", "delivered_per_s": f">= {rate}"},
           notes="floor: bare WebSocket echo (uvicorn + Starlette) with the same clients and rate; the load "
                 "generator shares the machine's cores with the server (and, on a shared machine, with "
                 "other work: see the load average)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        leg("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", Path(tmp), args.rate, args.seconds)
    try:
        schema = f"bench_{secrets.token_hex(3)}"
        admin = make_engine(args.postgres)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        try:
            with tempfile.TemporaryDirectory() as tmp:
                leg("postgresql", f"{args.postgres}?options=-csearch_path%3D{schema}", Path(tmp), args.rate,
                    args.seconds)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    except OperationalError as exc:
        print(f"PostgreSQL leg skipped: {str(exc).splitlines()[0]}")


if __name__ == "__main__":
    main()

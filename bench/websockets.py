"""Connection scale (issue 11): 10,000 idle, signed-in WebSockets on one `carerelay serve` node.

A real server process; 5,000 people with two API sessions each (a phone and a workstation) hold one
socket per session. Reported: the server's resident memory (VmRSS from /proc) before and with every
socket open, per connection and in all; its CPU while the sockets sit idle for longer than one
heartbeat (every socket re-checks its session then); and how long a message still takes, with every
socket open, from the POST until the recipient's socket has it (one recipient at a time, spread over
the sockets). The floor, in the same run and on the same stack (uvicorn + Starlette, the same
WebSocket implementation, no per-message deflate): a bare endpoint holding as many sockets and
pushing a posted text to one of them. Target: under 1 GiB for all the sockets.

The load generator and the servers it starts need one file descriptor per socket: the open-files
limit (RLIMIT_NOFILE) is raised for this process and its children, and said so in the results.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import secrets
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx2 as httpx
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from websockets.asyncio.client import ClientConnection, connect

from bench.common import cpu_seconds, load_average, node_env, report, rss_kib, stop, summarize_ms
from bench.messaging import serve
from carerelay.auth.service import start_session
from carerelay.config import load_settings
from carerelay.core.actor import Actor, cli_actor
from carerelay.core.clock import SystemClock
from carerelay.core.db import Database, make_engine
from carerelay.core.migrate import upgrade
from carerelay.directory import service as directory
from carerelay.messaging import service as messaging
from carerelay.messaging.models import ConversationKind
from tests.servers import free_port, wait_until_ready

CONNECTIONS = 10_000
SESSIONS_PER_PERSON = 2
SAMPLES = 50  # deliveries timed with every socket open
IDLE_SECONDS = 30.0  # longer than a socket's heartbeat (25 s), so every socket's periodic check falls inside
OPENING = 200  # handshakes in flight at once

FLOOR_APP = textwrap.dedent('''
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocketDisconnect

    sockets = {}

    async def ws(socket):
        await socket.accept()
        key = socket.query_params["id"]
        sockets[key] = socket
        await socket.send_text("hello")
        try:
            while True:
                await socket.receive_text()
        except WebSocketDisconnect:
            sockets.pop(key, None)

    async def push(request):
        await sockets[request.path_params["key"]].send_text((await request.body()).decode())
        return Response(status_code=204)

    app = Starlette(routes=[WebSocketRoute("/ws", ws), Route("/push/{key}", push, methods=["POST"])])
''')


def raise_fd_limit(needed: int) -> str:
    """Enough open files for every socket, here and in the servers started from here (they inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return f"RLIMIT_NOFILE {soft} (enough; not raised)"
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(hard, needed)))
    except (ValueError, OSError) as exc:
        sys.exit(f"need {needed} open files for the sockets; RLIMIT_NOFILE is {soft}/{hard} and could "
                 f"not be raised ({exc}): raise it (ulimit -n) or run as a user who may")
    return f"RLIMIT_NOFILE raised from {soft} to {needed} (hard {max(hard, needed)})"


def prepare(url: str, count: int) -> tuple[list[str], str, list[int]]:
    """Sessions for every socket; a sender with one direct conversation to each timed recipient.

    Socket ``i`` belongs to person ``i // SESSIONS_PER_PERSON``; conversation ``k`` goes to the person of
    socket ``target(k)``."""
    db = Database(make_engine(url))
    upgrade(db.engine)
    clock, actor = SystemClock(), cli_actor("bench")
    settings = load_settings(database_url=url)
    tokens: list[str] = []
    people: list[int] = []
    suffix = secrets.token_hex(2)
    for start in range(0, count // SESSIONS_PER_PERSON, 500):
        with db.unit_of_work() as session:
            for n in range(start, min(start + 500, count // SESSIONS_PER_PERSON)):
                person = directory.create_person(session=session, clock=clock, actor=actor, data={
                    "username": f"ws{n}-{suffix}", "given_name": "Bench", "family_name": f"Socket{n}",
                    "profession": "nurse", "roles": ["nurse"]})
                people.append(person.id)
                tokens.extend(start_session(session=session, clock=clock, settings=settings, person=person,
                                            kind="api", ip=None, user_agent="bench", method="bench").token
                              for _ in range(SESSIONS_PER_PERSON))
        print(f"  prepared {len(tokens)} sessions", end="\r", flush=True)
    with db.unit_of_work() as session:
        sender = directory.create_person(session=session, clock=clock, actor=actor, data={
            "username": f"ws-sender-{suffix}", "given_name": "Bench", "family_name": "Sender",
            "profession": "nurse", "roles": ["nurse"]})
        sender_token = start_session(session=session, clock=clock, settings=settings, person=sender, kind="api",
                                     ip=None, user_agent="bench", method="bench").token
        conversations = [messaging.create_conversation(
            session=session, clock=clock, actor=Actor(person_id=sender.id, username=sender.username),
            kind=ConversationKind.DIRECT, member_ids=[people[target(k, count) // SESSIONS_PER_PERSON]]).id
            for k in range(SAMPLES)]
    db.engine.dispose()
    print()
    return tokens, sender_token, conversations


def target(k: int, count: int) -> int:
    """The socket the ``k``-th timed delivery goes to: spread over all of them."""
    return (k * 7919) % count


async def open_all(count: int, url_of: Callable[[int], str], headers_of: Callable[[int], dict[str, str]]
                   ) -> tuple[list[ClientConnection | None], float]:
    """Every socket, ``OPENING`` handshakes at a time, each waited on until its first frame (hello)."""
    gate = asyncio.Semaphore(OPENING)

    async def one(i: int) -> ClientConnection | None:
        async with gate:
            try:
                # idle like a browser: no client pings (the server pings; the library answers)
                ws = await connect(url_of(i), additional_headers=headers_of(i), ping_interval=None,
                                   compression=None, open_timeout=120, max_queue=None)
                await asyncio.wait_for(ws.recv(), 120)
                return ws
            except Exception as exc:  # counted, not fatal: the figures say how many opened
                print(f"  socket {i}: {type(exc).__name__}: {str(exc)[:120]}")
                return None

    started = time.perf_counter()
    sockets = await asyncio.gather(*(one(i) for i in range(count)))
    return list(sockets), time.perf_counter() - started


async def close_all(sockets: list[ClientConnection | None]) -> None:
    for start in range(0, len(sockets), 500):
        await asyncio.gather(*(ws.close() for ws in sockets[start:start + 500] if ws is not None),
                             return_exceptions=True)


async def time_deliveries(sockets: list[ClientConnection | None],
                          deliver: Callable[[httpx.AsyncClient, int, str], Awaitable[None]],
                          arrived: Callable[[str | bytes, str], bool]) -> list[float]:
    """One delivery at a time, each to another socket: POST, then that socket's frame with the marker."""
    samples = []
    async with httpx.AsyncClient(timeout=60) as http:
        for k in range(SAMPLES):
            ws = sockets[target(k, len(sockets))]
            if ws is None:
                continue
            marker = f"scale-{k}-{secrets.token_hex(3)}"
            sent = time.perf_counter()
            await deliver(http, k, marker)
            while not arrived(await asyncio.wait_for(ws.recv(), 60), marker):
                pass
            samples.append(time.perf_counter() - sent)
    return samples


async def measure(pid: int, count: int, url_of: Callable[[int], str], headers_of: Callable[[int], dict[str, str]],
                  deliver: Callable[[httpx.AsyncClient, int, str], Awaitable[None]],
                  arrived: Callable[[str | bytes, str], bool]) -> dict[str, float]:
    before = rss_kib(pid)
    sockets, opening = await open_all(count, url_of, headers_of)
    opened = sum(ws is not None for ws in sockets)
    cpu, wall = cpu_seconds(pid), time.perf_counter()
    await asyncio.sleep(IDLE_SECONDS)  # the measurement: what idle sockets cost the server
    idle_cpu = (cpu_seconds(pid) - cpu) / (time.perf_counter() - wall)
    held = rss_kib(pid)
    samples = await time_deliveries(sockets, deliver, arrived)
    still_open = sum(ws is not None and ws.close_code is None for ws in sockets)
    await close_all(sockets)
    stats = {
        "connections": float(opened),
        "connections_open_at_end": float(still_open),
        "server_rss_mib": round(held / 1024, 1),
        "server_rss_before_mib": round(before / 1024, 1),
        "rss_per_connection_kib": round((held - before) / max(opened, 1), 2),
        "idle_cpu_percent": round(100 * idle_cpu, 1),
        "connect_per_s": round(opened / opening, 1),
    }
    stats.update(summarize_ms(samples, "deliver"))
    return stats


def ours(base: str, pid: int, tokens: list[str], sender: str, conversations: list[int]) -> dict[str, float]:
    ws_url = base.replace("http", "ws") + "/api/ws"

    async def deliver(http: httpx.AsyncClient, k: int, marker: str) -> None:
        response = await http.post(f"{base}/api/conversations/{conversations[k]}/messages", json={"text": marker},
                                   headers={"Authorization": f"Bearer {sender}"})
        assert response.status_code == 201, response.text

    def arrived(raw: str | bytes, marker: str) -> bool:
        return marker in str(raw)

    return asyncio.run(measure(pid, len(tokens), lambda i: ws_url,
                               lambda i: {"Authorization": f"Bearer {tokens[i]}"}, deliver, arrived))


def floor(port: int, pid: int, count: int) -> dict[str, float]:
    async def deliver(http: httpx.AsyncClient, k: int, marker: str) -> None:
        response = await http.post(f"http://127.0.0.1:{port}/push/{target(k, count)}", content=marker)
        assert response.status_code == 204, response.text

    def arrived(raw: str | bytes, marker: str) -> bool:
        return str(raw) == marker

    return asyncio.run(measure(pid, count, lambda i: f"ws://127.0.0.1:{port}/ws?id={i}", lambda i: {}, deliver,
                               arrived))


def leg(label: str, url: str, tmp: Path, count: int, limit: str) -> None:
    load_before = load_average()
    print(f"websockets on {label}: preparing {count} sessions")
    tokens, sender, conversations = prepare(url, count)
    port, floor_port = free_port(), free_port()
    server = serve([sys.executable, "-m", "carerelay", "serve"], node_env(url, port), tmp / f"server-{label}.log")
    (tmp / "floor_app.py").write_text(FLOOR_APP)
    floor_server: subprocess.Popen[str] | None = None
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base, server, tmp / f"server-{label}.log", timeout=180)
        print(f"  carerelay: opening {count} sockets")
        measured = ours(base, server.pid, tokens, sender, conversations)
        server.terminate()
        server.wait(timeout=60)
        floor_server = serve([sys.executable, "-m", "uvicorn", "floor_app:app", "--port", str(floor_port),
                              "--log-level", "warning", "--ws-per-message-deflate", "false"],
                             {"PYTHONPATH": str(tmp)}, tmp / "floor.log")
        wait_for_port(floor_port, floor_server)
        print(f"  floor: opening {count} sockets")
        baseline = floor(floor_port, floor_server.pid, count)
    finally:
        for process in (server, floor_server):
            if process is not None:
                stop(process, timeout=60)
    report(f"websockets-{label}", database=label, metrics=measured, load_before=load_before,
           floor={k: v for k, v in baseline.items() if k in measured},
           targets={"server_rss_mib": "< 1024", "deliver_p99_ms": "< 50"},
           notes=(f"{count} idle sockets ({count // SESSIONS_PER_PERSON} people, {SESSIONS_PER_PERSON} "
                  f"API sessions each), {OPENING} handshakes at a time, idle {IDLE_SECONDS:g} s (server CPU "
                  f"measured then, 100 = one core), then {SAMPLES} messages one at a time, each to another socket. "
                  "server_rss_*: VmRSS of the server process (the PostgreSQL backends are processes of their own and "
                  "not counted). floor: uvicorn + Starlette holding as many sockets and pushing a posted text to one "
                  f"of them. deliver target: issue 3's send-to-receive bound. {limit}; the load generator runs on "
                  "the same cores"))


def wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"floor server exited with {process.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError("floor server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--connections", type=int, default=CONNECTIONS, help="sockets to open (issue: 10,000)")
    args = parser.parse_args()
    limit = raise_fd_limit(args.connections + 2048)
    print(limit)
    if args.database in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            leg("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", Path(tmp), args.connections, limit)
    if args.database in ("postgresql", "both"):
        try:
            schema = f"bench_{secrets.token_hex(3)}"
            admin = make_engine(args.postgres)
            with admin.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    leg("postgresql", f"{args.postgres}?options=-csearch_path%3D{schema}", Path(tmp),
                        args.connections, limit)
            finally:
                with admin.begin() as conn:
                    conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        except OperationalError as exc:
            print(f"PostgreSQL leg skipped: {str(exc).splitlines()[0]}")


if __name__ == "__main__":
    main()

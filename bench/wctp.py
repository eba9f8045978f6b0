"""WCTP (issue 7): SubmitRequest → the alert on the assigned nurse's WebSocket.

A real `carerelay serve` process on SQLite with the demo hospital and a patient in 4W-412-B whose
ADT care team names Carol Nurse; the device of whoever is the bed's nurse when the benchmark runs
(Carol by day, the night nurse the charge nurse assigned after 19:00) holds a WebSocket. 4
concurrent senders (one HTTP connection each) POST nurse-call SubmitRequests to /wctp at a fixed
total rate; each is timed from the moment it is sent until the alert carrying its marker arrives on
that nurse's socket. The floor, in the
same run and on the same stack (uvicorn + Starlette), is a bare endpoint that answers a fixed
wctp-Confirmation and pushes the marker to a connected WebSocket: no parsing, no database.
Target on this 2-core machine: p99 < 50 ms at 300 submits/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx
from websockets.asyncio.client import ClientConnection, connect

from bench.common import cpu_seconds, no_collector_pauses, node_env, report, stop, summarize_ms
from bench.http1 import Connection
from carerelay.auth.service import start_session
from carerelay.config import load_settings
from carerelay.core.actor import cli_actor
from carerelay.core.clock import SystemClock
from carerelay.core.db import Database, make_engine
from carerelay.core.migrate import upgrade
from carerelay.demo import load_demo
from carerelay.directory.models import Person
from carerelay.patients import service as patients
from carerelay.routing.resolver import resolve
from tests.servers import free_port, wait_until_ready

SENDERS = 4
NURSE_OF_BED = "location:4W/412/B/nurse"  # where the demo's nurse-call paging rule sends 4W-412-B

FLOOR_APP = textwrap.dedent('''
    import asyncio
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route, WebSocketRoute

    sockets = set()
    ANSWER = (b'<?xml version="1.0" encoding="UTF-8"?><wctp-Operation wctpVersion="wctp-dtd-v1r3">'
              b'<wctp-Confirmation><wctp-Success successCode="200" successText="Message accepted"/>'
              b'</wctp-Confirmation></wctp-Operation>')

    async def wctp(request):
        body = await request.body()
        start = body.find(b"MARK-", body.find(b"<wctp-MessageText>"))
        marker = body[start:body.find(b"<", start)].decode()
        for ws in list(sockets):
            await ws.send_text(marker)
        return Response(ANSWER, media_type="text/xml")

    async def ws(socket):
        await socket.accept()
        sockets.add(socket)
        try:
            while True:
                await socket.receive_text()
        except Exception:
            sockets.discard(socket)

    app = Starlette(routes=[Route("/wctp", wctp, methods=["POST"]), WebSocketRoute("/ws", ws)])
''')


def submit(marker: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><wctp-Operation wctpVersion="wctp-dtd-v1r3">'
            f'<wctp-SubmitRequest><wctp-SubmitHeader submitTimestamp="2026-11-24T14:05:00">'
            f'<wctp-Originator senderID="nursecall-4w" securityCode="demo-secret"/>'
            f'<wctp-MessageControl messageID="{marker[-32:]}" notifyWhenDelivered="true" deliveryPriority="HIGH"/>'
            f'<wctp-Recipient recipientID="4W-412-B"/></wctp-SubmitHeader><wctp-Payload><wctp-MCR>'
            f"<wctp-MessageText>BATHROOM CALL 4W 412-B {marker}</wctp-MessageText><wctp-Choice>Accept</wctp-Choice>"
            f"<wctp-Choice>Reject</wctp-Choice></wctp-MCR></wctp-Payload></wctp-SubmitRequest>"
            f"</wctp-Operation>").encode()


def prepare(url: str) -> str:
    """The demo hospital, a patient in 4W-412-B with Carol Nurse on the care team, and a session token
    of whoever the bed's nurse is now: Carol by day, the nurse the charge nurse assigned for the
    night shift (19:00–07:00 on 4W) after hours."""
    db = Database(make_engine(url))
    upgrade(db.engine)
    clock, actor = SystemClock(), cli_actor("bench")
    with db.unit_of_work() as session:
        load_demo(session=session, clock=clock, actor=actor)
        patients.apply_adt(session=session, clock=clock, actor=actor, event=patients.AdtEvent(
            event="A01", patient=patients.Demographics(mrn="BENCH-WCTP", family="DOE", given="JANE"),
            event_at=clock.now(), location=patients.LocationRef(unit="4W", room="412", bed="B"),
            care_team=[patients.CareTeamEntry(role="RN", role_text="Primary Nurse", source="ROL",
                                              provider=patients.ProviderRef(id="N777"))]))
        reached = resolve(session, NURSE_OF_BED, clock.now()).person_ids
        if not reached:
            raise RuntimeError(f"{NURSE_OF_BED} reaches nobody now: the demo's nurse assignments have a gap")
        nurse = session.get_one(Person, reached[0])
        token = start_session(session=session, clock=clock, settings=load_settings(database_url=url), person=nurse,
                              kind="api", ip=None, user_agent="bench", method="bench").token
    db.engine.dispose()
    return token


async def _watch(ws: ClientConnection, arrivals: dict[str, float], floor: bool) -> None:
    async for raw in ws:
        if floor:
            arrivals.setdefault(str(raw), time.perf_counter())
            continue
        frame = json.loads(raw)
        if frame.get("kind") == "alert.new":
            title = str(frame["data"]["title"])
            arrivals.setdefault(title[title.find("MARK-"):], time.perf_counter())


async def load(post_url: str, ws_url: str, headers: dict[str, str], rate: int, seconds: float, prefix: str,
               floor: bool, server_pid: int) -> dict[str, float]:
    arrivals: dict[str, float] = {}
    ws = await connect(ws_url, additional_headers=headers, max_queue=None)
    if not floor:
        await ws.recv()  # hello
    watcher = asyncio.create_task(_watch(ws, arrivals, floor))
    sent: dict[str, float] = {}
    answered: list[float] = []
    refused = 0
    total = int(rate * seconds)
    per_sender = total // SENDERS

    async def sender(index: int) -> None:
        nonlocal refused
        http = Connection(post_url)
        path = urlsplit(post_url).path
        try:
            started = time.perf_counter()
            for n in range(per_sender):
                delay = started + n * SENDERS / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                marker = f"MARK-{prefix}{index}-{n}"
                sent[marker] = time.perf_counter()
                answer = await http.request("POST", path, submit(marker), {"Content-Type": "text/xml"})
                answered.append(time.perf_counter() - sent[marker])
                if b'successCode="200"' not in answer.body:
                    refused += 1
        finally:
            await http.close()

    server_before, generator_before = cpu_seconds(server_pid), time.process_time()
    began = time.perf_counter()
    await asyncio.gather(*(sender(i) for i in range(SENDERS)))
    deadline = time.perf_counter() + 30
    while len([m for m in sent if m in arrivals]) < len(sent) - refused and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    elapsed = max(arrivals.values(), default=began) - began
    server_cpu, generator_cpu = cpu_seconds(server_pid) - server_before, time.process_time() - generator_before
    watcher.cancel()
    await ws.close()
    latencies = [arrivals[m] - t for m, t in sent.items() if m in arrivals]
    stats = summarize_ms(latencies, "submit_to_alert")
    stats.update(summarize_ms(answered, "confirmation"))
    stats["submits_per_s"] = round(len(latencies) / elapsed, 1) if elapsed > 0 else 0.0
    stats["lost"] = float(len(sent) - refused - len(latencies))
    stats["refused"] = float(refused)
    stats["server_cpu_ms_per_submit"] = round(1000 * server_cpu / max(len(latencies), 1), 3)
    stats["load_generator_cpu_ms_per_submit"] = round(1000 * generator_cpu / max(len(latencies), 1), 3)
    return stats


def _wait_port(port: int, process: subprocess.Popen[str], timeout: float = 60) -> None:
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


def _serve(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    with log.open("w") as out:
        return subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, text=True)


def run(rate: int, seconds: float) -> None:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        url = f"sqlite:///{tmp / 'bench.db'}"
        token = prepare(url)
        port, floor_port = free_port(), free_port()
        server = _serve([sys.executable, "-m", "carerelay", "serve"], node_env(url, port), tmp / "server.log")
        (tmp / "floor_app.py").write_text(FLOOR_APP)
        floor_server = _serve([sys.executable, "-m", "uvicorn", "floor_app:app", "--port", str(floor_port),
                               "--log-level", "warning"], {"PYTHONPATH": str(tmp)}, tmp / "floor.log")
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_ready(base, server, tmp / "server.log")
            _wait_port(floor_port, floor_server)
            headers = {"Authorization": f"Bearer {token}"}
            asyncio.run(load(f"{base}/wctp", base.replace("http", "ws") + "/api/ws", headers, 50, 1, "W", False,
                                server.pid))
            with no_collector_pauses():
                ours = asyncio.run(load(f"{base}/wctp", base.replace("http", "ws") + "/api/ws", headers, rate,
                                        seconds, "C", False, server.pid))
            with no_collector_pauses():
                floor = asyncio.run(load(f"http://127.0.0.1:{floor_port}/wctp", f"ws://127.0.0.1:{floor_port}/ws",
                                         {}, rate, seconds, "F", True, floor_server.pid))
        finally:
            for process in (server, floor_server):
                stop(process)
    metrics: dict[str, Any] = {**ours, "offered_submits_per_s": float(rate), "senders": float(SENDERS)}
    report("wctp-sqlite", database="sqlite", metrics=metrics, floor={k: v for k, v in floor.items() if k in ours},
           targets={"submit_to_alert_p99_ms": "< 50", "submits_per_s": ">= 300 (at 300 offered)"},
           notes=(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. floor: uvicorn + Starlette endpoint answering a fixed "
                  "Confirmation and pushing the marker to a WebSocket (no parsing, no database). carerelay: hardened "
                  "parse, sender check, feed-monitor row, rule, bed → care-team nurse, alert + escalation run + "
                  "timer + audit, realtime event, commit (SQLite WAL, synchronous=FULL), WebSocket push. "
                  f"Senders share the {os.cpu_count()} cores (other work on the machine: the load average)."),
           load_before=round(load_before, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=300, help="total submits per second, all senders")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    run(args.rate, args.seconds)


if __name__ == "__main__":
    main()

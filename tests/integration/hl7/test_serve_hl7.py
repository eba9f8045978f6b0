"""`carerelay serve` with its MLLP listener, fed by `carerelay hl7 send` with the shared samples:
the ADT then the critical potassium ORU end up in the store, on the census and the care team."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import Engine

from carerelay.core.db import Database
from carerelay.demo import DEMO_PASSWORD
from tests.conftest import Backend, own_demo
from tests.hl7support import SAMPLES
from tests.servers import free_port, running_server

pytestmark = pytest.mark.slow


def _send(path: Path, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "carerelay", "hl7", "send", str(path), "--port", str(port)],
                          capture_output=True, text=True, timeout=60, env={**os.environ})


def test_samples_over_mllp_into_census_and_care_team(backend: Backend, tmp_path: Path) -> None:
    mllp = free_port()
    with own_demo(backend.name, tmp_path) as own, \
            running_server(own.cli_url(), tmp_path, CARERELAY_MLLP_PORT=str(mllp)) as server:
        adt = _send(SAMPLES / "adt_a01_admit.hl7", mllp)
        assert adt.returncode == 0, adt.stderr
        assert adt.stdout.startswith("AA ") and "MSA|AA|MSG00001" in adt.stdout
        oru = _send(SAMPLES / "oru_r01_critical_potassium.hl7", mllp)
        assert oru.returncode == 0 and "MSA|AA|LAB00042" in oru.stdout
        again = _send(SAMPLES / "oru_r01_critical_potassium.hl7", mllp)  # a resend: ACKed, not processed twice
        assert again.returncode == 0 and "duplicate" in again.stdout

        def token(user: str) -> dict[str, str]:
            r = httpx.post(f"{server.base_url}/api/auth/sign-in",
                           json={"username": user, "password": DEMO_PASSWORD, "kind": "api"})
            return {"Authorization": f"Bearer {r.json()['token']}"}

        admin, nurse = token("iadmin"), token("cnurse")
        deadline = time.monotonic() + 30  # waiting on the server's processor, a real process
        while True:
            found = httpx.get(f"{server.base_url}/api/hl7/messages", params={"mrn": "MRN1001"}, headers=admin).json()
            if len(found) == 2 and all(m["status"] == "processed" for m in found):
                break
            assert time.monotonic() < deadline, found
            time.sleep(0.05)
        assert [m["duplicates"] for m in found] == [1, 0]
        census = httpx.get(f"{server.base_url}/api/units/4W/census", headers=nurse).json()
        row = next(p for p in census["patients"] if p["mrn"] == "MRN1001")
        assert (row["room"], row["bed"], row["attending"]) == ("412", "B", "Dr. Gregory House")
        team = httpx.get(f"{server.base_url}/api/patients/{row['patient_id']}/care-team", headers=nurse).json()
        roles = {m["role"]: m["person_name"] for m in team}
        assert roles["attending"] == "Dr. Gregory House" and "Carol" in (roles["RN"] or "")
        critical = httpx.get(f"{server.base_url}/api/patients/{row['patient_id']}/results",
                             params={"critical": "true"}, headers=nurse).json()
        assert [(r["code"], r["value"], r["abnormal_flags"]) for r in critical] == [("2823-3", "6.8", "HH")]
        house = token("ghouse")
        while True:  # the server's worker turns the critical result into an alert for the attending
            alerts = httpx.get(f"{server.base_url}/api/alerts", headers=house).json()
            mine = [a for a in alerts if a["kind"] == "critical_result" and "MRN1001" in a["title"]]
            if mine:
                break
            assert time.monotonic() < deadline, alerts
            time.sleep(0.05)
        assert "6.8" in mine[0]["title"] and mine[0]["priority"] == "critical"
        feeds = httpx.get(f"{server.base_url}/api/hl7/feeds", headers=admin).json()
        assert feeds[0]["listening"] and feeds[0]["port"] == mllp and feeds[0]["last_message_at"]
    assert '"hl7 feed listening"' in server.log() or "hl7 feed listening" in server.log()


def test_sigkill_loses_nothing_acked_and_processes_once(backend: Backend, engine: Engine, tmp_path: Path) -> None:
    """Scenario 8 for HL7: ACKed messages survive SIGKILL and are processed exactly once after restart."""
    from sqlalchemy import func, select

    from carerelay.integrations.hl7.client import MLLPClient, ack_code
    from carerelay.integrations.hl7.models import Hl7Message
    from carerelay.patients.models import Observation, Patient
    from tests.hl7support import personalise, sample, uniq

    mrn = uniq("KILL")
    controls = [uniq("K") for _ in range(40)]
    mllp = free_port()
    with running_server(backend.cli_url(), tmp_path, CARERELAY_MLLP_PORT=str(mllp)) as server:
        with MLLPClient("127.0.0.1", mllp) as client:
            for c in controls:
                client.send_raw(b"\x0b" + personalise(sample("oru_r01_critical_potassium.hl7"), mrn=mrn,
                                                      control=c) + b"\x1c\r")
            acks = [client.read_ack() for _ in controls]
        server.process.kill()  # SIGKILL right after the last ACK: processing is likely unfinished
        server.process.wait(timeout=10)
    assert [ack_code(a) for a in acks] == ["AA"] * len(controls)
    db = Database(engine)
    with db.unit_of_work() as session:
        stored = session.execute(select(func.count()).select_from(Hl7Message)
                                 .where(Hl7Message.control_id.in_(controls))).scalar_one()
    assert stored == len(controls)  # every ACKed message is in the store
    with running_server(backend.cli_url(), tmp_path, CARERELAY_MLLP_PORT=str(free_port())):
        deadline = time.monotonic() + 60  # the restarted server's processor drains what was left
        while True:
            with db.unit_of_work() as session:
                statuses = list(session.execute(select(Hl7Message.status)
                                                .where(Hl7Message.control_id.in_(controls))).scalars())
            if all(s == "processed" for s in statuses):
                break
            assert time.monotonic() < deadline, statuses
            time.sleep(0.05)
    with db.unit_of_work() as session:
        pid = session.execute(select(Patient.id).where(Patient.mrn == mrn)).scalar_one()
        observations = session.execute(select(func.count()).select_from(Observation)
                                       .where(Observation.patient_id == pid)).scalar_one()
    assert observations == 2 * len(controls)  # two OBX per message, each message applied once

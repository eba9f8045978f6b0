"""Each message records whom it was sent to and why; the sender sees the reason beside each receipt."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from carerelay.core.db import Database
from carerelay.messaging.models import Message
from tests.api.messaging.helpers import direct, send, user


def test_direct_and_addressed_messages_keep_their_reasons(client: TestClient, db: Database) -> None:
    nurse, house = user(client, "cnurse"), user(client, "ghouse")
    plain = send(client, nurse, direct(client, nurse, house), "Family asking for an update")
    [receipt] = client.get(f"/api/messages/{plain['id']}/receipts", headers=nurse.headers).json()
    assert (receipt["person_id"], receipt["reason"]) == (house.id, "member of the conversation")

    team = next(g for g in client.get("/api/groups", headers=nurse.headers).json() if g["code"] == "STROKE")
    conversation = client.post("/api/conversations", headers=nurse.headers,
                               json={"kind": "address", "address": f"team:{team['id']}"}).json()
    assert {r["reason"] for r in conversation["resolution"]["recipients"]} == {"member of team Stroke Team"}
    addressed = send(client, nurse, conversation["id"], "Code stroke, ED bay 3")
    receipts = client.get(f"/api/messages/{addressed['id']}/receipts", headers=nurse.headers).json()
    assert len(receipts) == 3 and {r["reason"] for r in receipts} == {"member of team Stroke Team"}
    mine = client.get(f"/api/messages/{addressed['id']}/receipts", headers=user(client, "ihalvorsen").headers).json()
    assert len(mine) == 1  # a recipient sees only their own receipt, and its reason

    with db.unit_of_work() as session:
        stored = session.execute(select(Message.resolution).where(Message.id == addressed["id"])).scalar_one()
    assert stored is not None and stored["address"] == f"team:{team['id']}" and len(stored["reasons"]) == 3
    audit = client.get("/api/audit", headers=user(client, "ccompliance").headers,
                       params={"action": "message.send", "object_id": str(conversation["id"])}).json()
    assert audit[-1]["detail"]["resolution"] == stored

"""Searching the audit log over HTTP: who may, the filters, and that the search is itself audited."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import sign_in


def test_auditors_search_the_log_and_others_may_not(client: TestClient) -> None:
    compliance, admin, nurse = sign_in(client, "ccompliance"), sign_in(client, "admin"), sign_in(client, "cnurse")
    nurse_id = client.get("/api/auth/me", headers=nurse).json()["person_id"]
    wrong = client.post("/api/auth/sign-in", json={"username": "cnurse", "password": "wrong-password"})
    assert wrong.status_code == 401

    failures = client.get("/api/audit", headers=compliance,
                          params={"action": "auth.sign_in", "object_id": str(nurse_id)})
    assert failures.status_code == 200
    entries = failures.json()
    assert entries and all(e["action"] == "auth.sign_in" and e["object_id"] == str(nurse_id) for e in entries)
    assert entries[-1]["outcome"] == "failure" and entries[-1]["detail"]["reason"] == "password"
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    paged = client.get("/api/audit", headers=admin, params={"after_seq": seqs[0], "limit": 1,
                                                            "action": "auth.sign_in", "object_id": str(nurse_id)})
    assert [e["seq"] for e in paged.json()] == seqs[1:2]
    later = client.get("/api/audit", headers=admin, params={"since": entries[-1]["at"], "action": "auth.sign_in",
                                                            "object_id": str(nurse_id)}).json()
    assert later and all(e["at"] >= entries[-1]["at"] for e in later)

    searches = client.get("/api/audit", headers=compliance, params={"action": "audit.search"}).json()
    assert len(searches) >= 3 and searches[-1]["object_type"] == "audit"  # reading the log leaves a trace too
    assert client.get("/api/audit", headers=nurse).status_code == 403
    assert client.get("/api/audit").status_code == 401
    assert client.get("/api/audit", headers=compliance, params={"limit": 0}).status_code == 422
    assert client.get("/api/audit/verify", headers=compliance).json()["ok"] is True
    assert client.get("/api/audit/verify", headers=nurse).status_code == 403

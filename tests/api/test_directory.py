"""Directory API: create, search, conflicts, validation, and nothing half-written on failure."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from carerelay.core.db import Database
from carerelay.directory.models import Group, Person
from tests.conftest import sign_in


def _new_person(**extra: Any) -> dict[str, Any]:
    return {"username": "tnew", "given_name": "Tess", "family_name": "Newcomer", "profession": "nurse",
            "roles": ["nurse"], **extra}


def test_admin_creates_a_person_with_external_ids(client: TestClient) -> None:
    admin = sign_in(client, "admin")
    depts = client.get("/api/departments", headers=admin).json()
    four_west = next(d for d in depts if d["code"] == "4W")
    body = _new_person(department_id=four_west["id"], npi="9876543210", kronos_id="K-NEW-1", ms_upn="tnew@x.org",
                       personnel_type="non_exempt", custom3="C3-1", password="first-password-1")
    created = client.post("/api/people", headers=admin, json=body)
    assert created.status_code == 201, created.text
    person = created.json()
    assert person["display_name"] == "Tess Newcomer"
    assert person["roles"] == ["nurse"] and person["custom3"] == "C3-1"
    found = client.get("/api/people", headers=admin, params={"id_field": "kronos_id", "id_value": "K-NEW-1"}).json()
    assert [p["id"] for p in found["items"]] == [person["id"]]
    sign_in(client, "tnew", "first-password-1")


def test_only_admins_create_people(client: TestClient) -> None:
    nurse = sign_in(client, "cnurse")
    assert client.post("/api/people", headers=nurse, json=_new_person()).status_code == 403
    assert client.post("/api/people", json=_new_person()).status_code == 401


def test_duplicate_external_id_is_409_naming_the_field(client: TestClient, db: Database) -> None:
    admin = sign_in(client, "admin")
    response = client.post("/api/people", headers=admin, json=_new_person(npi="1234567890"))
    assert response.status_code == 409
    assert response.json()["field"] == "npi"
    assert "1234567890" in response.json()["detail"]
    with db.unit_of_work() as session:
        assert session.execute(select(Person).where(Person.username == "tnew")).first() is None


def test_unknown_field_and_wrong_type_are_422_naming_the_field(client: TestClient) -> None:
    admin = sign_in(client, "admin")
    unknown = client.post("/api/people", headers=admin, json=_new_person(favourite_colour="teal"))
    assert unknown.status_code == 422
    assert unknown.json()["field"] == "favourite_colour"
    wrong = client.post("/api/people", headers=admin, json=_new_person(department_id="four"))
    assert wrong.status_code == 422 and wrong.json()["field"] == "department_id"
    bad_npi = client.post("/api/people", headers=admin, json=_new_person(npi="12ab"))
    assert bad_npi.status_code == 422 and bad_npi.json()["field"] == "npi"
    bad_tz = client.post("/api/sites", headers=admin, json={"code": "X", "name": "X", "timezone": "Mars/Base"})
    assert bad_tz.status_code == 422 and "IANA" in bad_tz.json()["detail"]


def test_failed_request_leaves_nothing_half_written(client: TestClient, db: Database) -> None:
    admin = sign_in(client, "admin")
    with db.unit_of_work() as session:
        groups_before = session.execute(select(func.count()).select_from(Group)).scalar_one()
    response = client.post("/api/groups", headers=admin,
                           json={"code": "HALF", "name": "Half", "member_ids": [1, 999999]})
    assert response.status_code == 422 and response.json()["field"] == "member_ids"
    missing_dept = client.post("/api/people", headers=admin, json=_new_person(department_id=999999))
    assert missing_dept.status_code == 422
    with db.unit_of_work() as session:
        assert session.execute(select(func.count()).select_from(Group)).scalar_one() == groups_before
        assert session.execute(select(Person).where(Person.username == "tnew")).first() is None


def test_search_by_name_prefix_role_department_and_pages(client: TestClient) -> None:
    user = sign_in(client, "cnurse")
    by_name = client.get("/api/people", headers=user, params={"q": "hou"}).json()["items"]
    assert [p["username"] for p in by_name] == ["ghouse"]
    two_words = client.get("/api/people", headers=user, params={"q": "gregory hou"}).json()["items"]
    assert [p["username"] for p in two_words] == ["ghouse"]
    operators = client.get("/api/people", headers=user, params={"role": "operator"}).json()["items"]
    assert {p["username"] for p in operators} == {"ooperator", "tmoreno", "bkim"}
    icu = next(d for d in client.get("/api/departments", headers=user).json() if d["code"] == "ICU")
    icu_people = client.get("/api/people", headers=user, params={"department_id": icu["id"], "limit": 200}).json()
    assert icu_people["items"] and all(p["department_id"] == icu["id"] for p in icu_people["items"])
    page1 = client.get("/api/people", headers=user, params={"limit": 25}).json()
    page2 = client.get("/api/people", headers=user, params={"limit": 25, "offset": page1["next_offset"]}).json()
    assert page1["next_offset"] == 25
    assert not {p["id"] for p in page1["items"]} & {p["id"] for p in page2["items"]}
    nurse = client.get("/api/people", headers=user, params={"id_field": "unique_id", "id_value": "N777"}).json()
    assert [p["username"] for p in nurse["items"]] == ["cnurse"]
    bad = client.get("/api/people", headers=user, params={"id_field": "password_hash", "id_value": "x"})
    assert bad.status_code == 422


def test_groups_members_devices_contacts_and_pagers(client: TestClient) -> None:
    admin = sign_in(client, "admin")
    me = client.get("/api/auth/me", headers=admin).json()
    group = client.post("/api/groups", headers=admin, json={"code": "NIGHT-OWLS", "name": "Night owls",
                                                            "kind": "team"}).json()
    assert group["kind"] == "team"
    added = client.post(f"/api/groups/{group['id']}/members", headers=admin, json={"person_id": me["person_id"]})
    assert added.json()["member_ids"] == [me["person_id"]]
    removed = client.delete(f"/api/groups/{group['id']}/members/{me['person_id']}", headers=admin)
    assert removed.json()["member_ids"] == []
    assert client.delete(f"/api/groups/{group['id']}/members/{me['person_id']}", headers=admin).status_code == 404
    point = client.post(f"/api/people/{me['person_id']}/contact-points", headers=admin,
                        json={"kind": "sms", "value": "+15550009999"})
    assert point.status_code == 201
    dup = client.post(f"/api/people/{me['person_id']}/contact-points", headers=admin,
                      json={"kind": "sms", "value": "+15550009999"})
    assert dup.status_code == 409
    off = client.post(f"/api/people/{me['person_id']}/contact-points/{point.json()['id']}/deactivate",
                      headers=admin)
    assert off.json()["active"] is False
    shared_with_owner = client.post("/api/devices", headers=admin, json={
        "kind": "smartphone", "identifier": "X-1", "shared": True, "person_id": me["person_id"]})
    assert shared_with_owner.status_code == 422
    pager = client.post("/api/virtual-pagers", headers=admin,
                        json={"number": "5559999", "target": f"team:{group['id']}"})
    assert pager.status_code == 201
    wrong_kind = client.post("/api/virtual-pagers", headers=admin,
                             json={"number": "5559998", "target": f"group:{group['id']}"})
    assert wrong_kind.status_code == 422
    taken = client.post("/api/virtual-pagers", headers=admin,
                        json={"number": "5551234", "target": f"team:{group['id']}"})
    assert taken.status_code == 409


def test_demo_matches_the_shared_samples(client: TestClient) -> None:
    user = sign_in(client, "ooperator")
    house = client.get("/api/people", headers=user, params={"id_field": "npi", "id_value": "1234567890"}).json()
    assert house["items"][0]["family_name"] == "House"
    sites = {s["code"]: s["timezone"] for s in client.get("/api/sites", headers=user).json()}
    assert len(sites) == 2 and len(set(sites.values())) == 2
    assert len(client.get("/api/departments", headers=user).json()) == 6
    pagers = {p["number"] for p in client.get("/api/virtual-pagers", headers=user).json()}
    assert "5551234" in pagers

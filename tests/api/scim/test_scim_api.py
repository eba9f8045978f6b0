"""SCIM over HTTP: the forms Entra ID and Okta send, filters, paging, errors and their side effects."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from carerelay.audit.models import AuditEntry
from carerelay.auth.models import AuthSession
from carerelay.core.actor import cli_actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.directory.models import GroupMember, Person
from carerelay.integrations.scim import service as scim_service
from tests.conftest import sign_in

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
OURS = "urn:ietf:params:scim:schemas:extension:carerelay:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


@pytest.fixture
def scim(db: Database, clock: FakeClock) -> dict[str, str]:
    with db.unit_of_work() as session:
        token = scim_service.create_token(session=session, clock=clock, actor=cli_actor("test"), provider="entra").token
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}


def _user(username: str, **extra: Any) -> dict[str, Any]:
    return {"schemas": [CORE], "userName": username, "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"value": username if "@" in username else f"{username}@example.org", "type": "work",
                        "primary": True}], "active": True,
            **extra}


def _create(client: TestClient, scim: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/scim/v2/Users", headers=scim, json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def _people(db: Database) -> int:
    with db.unit_of_work() as session:
        return int(session.execute(select(func.count()).select_from(Person)).scalar_one())


def _error(response: Any, status: int, scim_type: str | None) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    assert body.get("scimType") == scim_type, body
    detail: str = body["detail"]
    return detail


def test_create_maps_extensions_onto_the_directory_and_is_audited(
    client: TestClient, scim: dict[str, str], db: Database
) -> None:
    body = _user("ada.lovelace@example.org", externalId="entra-oid-1", title="RN", userType="nurse",
                 **{"schemas": [CORE, ENTERPRISE, OURS],
                    ENTERPRISE: {"employeeNumber": "E-1001", "department": "4W"},
                    OURS: {"npi": "1234567893", "kronosId": "K-77", "msUpn": "ada@contoso.org", "custom2": "C2"}})
    response = client.post("/scim/v2/Users", headers=scim, json=body)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    created = response.json()
    assert response.headers["location"].endswith(f"/scim/v2/Users/{created['id']}")
    assert created["userName"] == "ada.lovelace@example.org" and created["externalId"] == "entra-oid-1"
    assert created[ENTERPRISE]["employeeNumber"] == "E-1001"
    assert created[OURS] == {"npi": "1234567893", "kronosId": "K-77", "msUpn": "ada@contoso.org", "custom2": "C2"}
    assert created["meta"]["resourceType"] == "User" and created["meta"]["created"]
    with db.unit_of_work() as session:
        person = session.get(Person, int(created["id"]))
        assert person is not None
        assert (person.npi, person.kronos_id, person.ms_upn, person.custom2) == ("1234567893", "K-77",
                                                                                  "ada@contoso.org", "C2")
        assert person.profession == "nurse" and person.title == "RN" and person.email == "ada.lovelace@example.org"
        assert person.department is not None and person.department.code == "4W"
        actions = set(session.execute(select(AuditEntry.action).where(AuditEntry.object_id == created["id"]))
                      .scalars())
    assert {"directory.create_person", "scim.create_user"} <= actions
    again = client.get(f"/scim/v2/Users/{created['id']}", headers=scim).json()
    assert again == created


def test_filters_paging_and_sorting(client: TestClient, scim: dict[str, str]) -> None:
    for i, name in enumerate(["zed.one", "zed.two", "zed.three", "amy.four"]):
        _create(client, scim, _user(name, externalId=f"ext-{i}", displayName=f"Display {name}",
                                    active=(name != "zed.two")))

    def names(flt: str, **params: Any) -> list[str]:
        response = client.get("/scim/v2/Users", headers=scim, params={"filter": flt, **params})
        assert response.status_code == 200, response.text
        return [r["userName"] for r in response.json()["Resources"]]

    assert names('userName eq "ZED.ONE"') == ["zed.one"]  # userName is not case-exact
    assert names('externalId eq "ext-2"') == ["zed.three"]
    assert names('externalId eq "EXT-2"') == []  # externalId is case-exact
    assert sorted(names('userName sw "zed." and active eq true')) == ["zed.one", "zed.three"]
    assert names('emails co "four@"') == ["amy.four"]
    assert names('emails[value eq "zed.two@example.org"]') == ["zed.two"]
    assert sorted(names('displayName eq "Display zed.one" or displayName eq "Display amy.four"')) == [
        "amy.four", "zed.one"]
    assert "zed.one" in names("externalId pr")
    assert names('userName sw "zed." and not (active eq true)') == ["zed.two"]
    assert names('userName sw "zed."', sortBy="userName", sortOrder="descending") == ["zed.two", "zed.three",
                                                                                      "zed.one"]
    page = client.get("/scim/v2/Users", headers=scim, params={"filter": 'userName sw "zed."', "sortBy": "userName",
                                                              "startIndex": 2, "count": 1}).json()
    assert page["totalResults"] == 3 and page["startIndex"] == 2 and page["itemsPerPage"] == 1
    assert [r["userName"] for r in page["Resources"]] == ["zed.three"]
    searched = client.post("/scim/v2/Users/.search", headers=scim, json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": 'userName eq "amy.four"',
        "attributes": ["userName"]}).json()
    assert searched["totalResults"] == 1
    assert set(searched["Resources"][0]) == {"schemas", "id", "userName"}


def test_existing_directory_people_are_visible_for_matching(client: TestClient, scim: dict[str, str]) -> None:
    found = client.get("/scim/v2/Users", headers=scim, params={"filter": 'userName eq "cnurse"'}).json()
    assert found["totalResults"] == 1 and found["Resources"][0]["active"] is True


def test_bad_filters_are_invalid_filter(client: TestClient, scim: dict[str, str]) -> None:
    _error(client.get("/scim/v2/Users", headers=scim, params={"filter": 'userName eq'}), 400, "invalidFilter")
    detail = _error(client.get("/scim/v2/Users", headers=scim, params={"filter": 'nickName eq "x"'}), 400,
                    "invalidFilter")
    assert "nickName" in detail
    _error(client.get("/scim/v2/Users", headers=scim, params={"filter": 'active eq "maybe"'}), 400, "invalidFilter")


def test_entra_patch_active_false_string_ends_the_persons_sessions(
    client: TestClient, scim: dict[str, str], db: Database
) -> None:
    nurse = sign_in(client, "cnurse")
    assert client.get("/api/auth/me", headers=nurse).status_code == 200
    person = client.get("/scim/v2/Users", headers=scim, params={"filter": 'userName eq "cnurse"'}).json()
    user_id = person["Resources"][0]["id"]
    response = client.patch(f"/scim/v2/Users/{user_id}", headers=scim, json={
        "schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]})
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    assert client.get("/api/auth/me", headers=nurse).status_code == 401
    with db.unit_of_work() as session:
        live = session.execute(select(func.count()).select_from(AuthSession).where(
            AuthSession.person_id == int(user_id), AuthSession.revoked_at.is_(None))).scalar_one()
    assert live == 0


def test_okta_and_entra_patch_forms(client: TestClient, scim: dict[str, str], db: Database) -> None:
    created = _create(client, scim, _user("okta.user"))
    url = f"/scim/v2/Users/{created['id']}"
    # Okta: a path-less replace whose value is an object of attributes.
    okta = client.patch(url, headers=scim, json={"schemas": [PATCH], "Operations": [
        {"op": "replace", "value": {"id": created["id"], "active": False,
                                    "name": {"givenName": "Grace", "familyName": "Hopper"}}}]})
    assert okta.status_code == 200, okta.text
    assert okta.json()["active"] is False and okta.json()["name"]["givenName"] == "Grace"
    # Entra ID: capitalised ops, a filter path that creates the entry, a qualified extension path.
    entra = client.patch(url, headers=scim, json={"schemas": [PATCH], "Operations": [
        {"op": "Add", "path": 'emails[type eq "home"].value', "value": "grace@home.example"},
        {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "ICU"},
        {"op": "Add", "path": f"{OURS}:npi", "value": "1234567893"},
        {"op": "Replace", "path": "active", "value": "True"}]})
    assert entra.status_code == 200, entra.text
    body = entra.json()
    assert {"value": "grace@home.example", "type": "home"} in body["emails"]
    assert body[ENTERPRISE]["department"] == "ICU" and body[OURS]["npi"] == "1234567893" and body["active"]
    removed = client.patch(url, headers=scim, json={"schemas": [PATCH], "Operations": [
        {"op": "remove", "path": f"{OURS}:npi"}, {"op": "remove", "path": 'emails[type eq "home"]'}]})
    assert removed.status_code == 200, removed.text
    assert OURS not in removed.json()
    with db.unit_of_work() as session:
        person = session.get(Person, int(created["id"]))
        assert person is not None and person.npi is None and person.given_name == "Grace" and person.active
        assert person.department is not None and person.department.code == "ICU"


def test_groups_members_add_and_remove_in_both_forms(client: TestClient, scim: dict[str, str], db: Database) -> None:
    a = _create(client, scim, _user("member.a"))["id"]
    b = _create(client, scim, _user("member.b"))["id"]
    created = client.post("/scim/v2/Groups", headers=scim, json={
        "schemas": [GROUP], "displayName": "4W Night Nurses", "externalId": "g-1", "members": [{"value": a}]})
    assert created.status_code == 201, created.text
    gid = created.json()["id"]
    url = f"/scim/v2/Groups/{gid}"
    added = client.patch(url, headers=scim, json={"schemas": [PATCH], "Operations": [
        {"op": "Add", "path": "members", "value": [{"value": b}]}]})
    assert added.status_code == 200, added.text
    assert sorted(m["value"] for m in added.json()["members"]) == sorted([a, b])
    member_of = client.get(f"/scim/v2/Users/{b}", headers=scim).json()
    assert [g["value"] for g in member_of["groups"]] == [gid]
    # Entra removes with a value naming the member, Okta with a filter path.
    entra = client.patch(url, headers=scim, json={"schemas": [PATCH], "Operations": [
        {"op": "Remove", "path": "members", "value": [{"value": a}]}]})
    assert entra.status_code == 200, entra.text
    okta = client.patch(url, headers=scim, json={"schemas": [PATCH], "Operations": [
        {"op": "remove", "path": f'members[value eq "{b}"]'},
        {"op": "replace", "path": "displayName", "value": "4W Nights"}]})
    assert okta.status_code == 200, okta.text
    assert "members" not in okta.json() and okta.json()["displayName"] == "4W Nights"
    listed = client.get("/scim/v2/Groups", headers=scim, params={"filter": 'displayName eq "4w nights"'}).json()
    assert [g["id"] for g in listed["Resources"]] == [gid]
    with db.unit_of_work() as session:
        assert session.execute(select(GroupMember).where(GroupMember.group_id == int(gid))).first() is None
    assert client.delete(url, headers=scim).status_code == 204
    _error(client.get(url, headers=scim), 404, None)


def test_nothing_is_half_written_when_a_request_fails(client: TestClient, scim: dict[str, str], db: Database) -> None:
    _create(client, scim, _user("first.npi", schemas=[CORE, OURS], **{OURS: {"npi": "1234567893"}}))
    before = _people(db)
    detail = _error(client.post("/scim/v2/Users", headers=scim, json=_user(
        "second.npi", schemas=[CORE, OURS], **{OURS: {"npi": "1234567893"}})), 409, "uniqueness")
    assert "npi" in detail
    _error(client.post("/scim/v2/Users", headers=scim, json=_user("first.npi")), 409, "uniqueness")
    _error(client.post("/scim/v2/Users", headers=scim, json=_user("bad.npi", schemas=[CORE, OURS],
                                                                    **{OURS: {"npi": "12345"}})), 400, "invalidValue")
    _error(client.post("/scim/v2/Users", headers=scim, json={"schemas": [CORE], "name": {"givenName": "X"}}),
           400, "invalidValue")
    _error(client.post("/scim/v2/Users", headers=scim, json={"schemas": [CORE], "userName": "x", "bogus": 1}),
           400, "invalidSyntax")
    _error(client.post("/scim/v2/Users", headers=scim, content=b"{not json"), 400, "invalidSyntax")
    _error(client.post("/scim/v2/Groups", headers=scim, json={"schemas": [GROUP], "displayName": "G",
                                                              "members": [{"value": "999999"}]}), 400, "invalidValue")
    assert _people(db) == before
    target = client.get("/scim/v2/Users", headers=scim, params={"filter": 'userName eq "first.npi"'}).json()
    user_id = target["Resources"][0]["id"]
    bad_patch = client.patch(f"/scim/v2/Users/{user_id}", headers=scim, json={"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "title", "value": "Charge"},
        {"op": "replace", "path": f"{OURS}:npi", "value": "not-an-npi"}]})
    _error(bad_patch, 400, "invalidValue")
    _error(client.patch(f"/scim/v2/Users/{user_id}", headers=scim, json={"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "id", "value": "1"}]}), 400, "mutability")
    assert "title" not in client.get(f"/scim/v2/Users/{user_id}", headers=scim).json()


def test_delete_deactivates_and_hides_but_keeps_the_person(
    client: TestClient, scim: dict[str, str], db: Database
) -> None:
    created = _create(client, scim, _user("leaver"))
    assert client.delete(f"/scim/v2/Users/{created['id']}", headers=scim).status_code == 204
    _error(client.get(f"/scim/v2/Users/{created['id']}", headers=scim), 404, None)
    listed = client.get("/scim/v2/Users", headers=scim, params={"filter": 'userName eq "leaver"'}).json()
    assert listed["totalResults"] == 0
    with db.unit_of_work() as session:
        person = session.get(Person, int(created["id"]))
        assert person is not None and person.active is False
        actions = list(session.execute(select(AuditEntry.action).where(AuditEntry.object_id == created["id"])
                                       .order_by(AuditEntry.seq)).scalars())
    assert actions[-1] == "scim.delete_user"
    # Provisioned again later (re-hired): the same person returns, active, instead of a 409.
    again = client.post("/scim/v2/Users", headers=scim, json=_user("leaver", externalId="rehire-1"))
    assert again.status_code == 201, again.text
    assert again.json()["id"] == created["id"] and again.json()["active"] is True


def test_only_a_scim_token_opens_scim(client: TestClient, scim: dict[str, str], db: Database, clock: FakeClock) -> None:
    admin = sign_in(client, "admin")
    _error(client.get("/scim/v2/Users", headers=admin), 401, None)
    _error(client.get("/scim/v2/Users"), 401, None)
    assert client.get("/api/people", headers=scim).status_code == 401
    with db.unit_of_work() as session:
        token = scim_service.list_tokens(session=session)[-1]
        scim_service.revoke_token(session=session, clock=clock, actor=cli_actor("test"), token_id=token.id)
    _error(client.get("/scim/v2/Users", headers=scim), 401, None)


def test_discovery_documents(client: TestClient, scim: dict[str, str]) -> None:
    config = client.get("/scim/v2/ServiceProviderConfig", headers=scim).json()
    assert config["patch"]["supported"] and config["filter"]["supported"] and config["sort"]["supported"]
    assert not config["bulk"]["supported"]
    types = client.get("/scim/v2/ResourceTypes", headers=scim).json()
    assert {t["id"] for t in types["Resources"]} == {"User", "Group"}
    schemas = client.get("/scim/v2/Schemas", headers=scim).json()
    assert OURS in {s["id"] for s in schemas["Resources"]}
    ours = client.get(f"/scim/v2/Schemas/{OURS}", headers=scim).json()
    assert {"npi", "ehrUsername", "epicSerId", "kronosId", "msUpn", "uniqueId"} <= {a["name"] for a in
                                                                                     ours["attributes"]}
    _error(client.delete("/scim/v2/Schemas", headers=scim), 405, None)
    _error(client.get("/scim/v2/Nope", headers=scim), 404, None)

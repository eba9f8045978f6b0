"""LDAP sync against a real slapd: create, update, deactivate, incremental runs, dry runs, the CLI."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from carerelay.audit.models import AuditEntry
from carerelay.core.actor import cli_actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database, make_engine
from carerelay.core.migrate import upgrade
from carerelay.directory.models import ContactPoint, Group, GroupMember, Person
from carerelay.integrations.ldap import service as ldap
from tests.conftest import fresh_backend, sign_in
from tests.integration.ldap.slapd import SUFFIX, Slapd, running_slapd, slapd_missing

pytestmark = pytest.mark.skipif(slapd_missing() is not None, reason=slapd_missing() or "")

OPENLDAP_MAP = ("username=uid,email=mail,phone=telephoneNumber,department=ou,employee_id=employeeNumber,"
                "given_name=givenName,family_name=sn,title=title,groups=memberOf")


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with running_slapd(tmp_path_factory.mktemp("slapd")) as server:
        yield server


class Tree:
    """One organizational unit per test, so tests never see each other's entries."""

    def __init__(self, server: Slapd) -> None:
        self.tag = secrets.token_hex(4)
        self.base = f"ou=t{self.tag},{SUFFIX}"
        self.conn = server.admin()
        self.conn.add(self.base, ["organizationalUnit"], {"ou": f"t{self.tag}"})
        self.conn.add(f"ou=people,{self.base}", ["organizationalUnit"], {"ou": "people"})
        self.conn.add(f"ou=groups,{self.base}", ["organizationalUnit"], {"ou": "groups"})

    def person_dn(self, uid: str) -> str:
        return f"uid={uid},ou=people,{self.base}"

    def add_person(self, uid: str, given: str, family: str, **attrs: Any) -> str:
        dn = self.person_dn(uid)
        self.conn.add(dn, ["inetOrgPerson"], {"uid": uid, "cn": f"{given} {family}", "givenName": given,
                                               "sn": family, **attrs})
        return dn

    def add_group(self, cn: str, members: list[str]) -> str:
        dn = f"cn={cn},ou=groups,{self.base}"
        self.conn.add(dn, ["groupOfNames"], {"cn": cn, "member": members})
        return dn

    def modify(self, dn: str, **changes: Any) -> None:
        self.conn.modify(dn, {k: [(ldap3.MODIFY_REPLACE, [v] if v else [])] for k, v in changes.items()})

    def config(self, url: str, **overrides: Any) -> ldap.LdapConfig:
        values: dict[str, Any] = {
            "url": url, "bind_dn": f"cn=admin,{SUFFIX}", "bind_password": "test-root-secret",
            "base_dn": f"ou=people,{self.base}", "user_filter": "(objectClass=inetOrgPerson)",
            "attributes": ldap.parse_attribute_map(OPENLDAP_MAP), "employee_id_field": "kronos_id",
            "incremental": "entryCSN", "page_size": 2, **overrides}
        return ldap.LdapConfig(**values)


@pytest.fixture
def tree(slapd: Slapd) -> Tree:
    return Tree(slapd)


def _run(db: Database, clock: FakeClock, config: ldap.LdapConfig, **kwargs: Any) -> ldap.SyncReport:
    reader = ldap.Ldap3Directory(config)
    try:
        with db.unit_of_work() as session:
            return ldap.sync(session=session, clock=clock, actor=cli_actor("ldap-sync"), config=config,
                             directory_reader=reader, **kwargs)
    finally:
        reader.close()


def _person(db: Database, username: str) -> Person:
    with db.unit_of_work() as session:
        person = session.execute(select(Person).where(Person.username == username)).scalar_one()
        session.expunge(person)
        return person


def _seed(tree: Tree) -> None:
    kim = tree.add_person(f"kim{tree.tag}", "Kim", "Lee", mail="kim@example.org", telephoneNumber="+1 555 0101",
                          ou="4W", employeeNumber=f"E{tree.tag}1", title="RN")
    raj = tree.add_person(f"raj{tree.tag}", "Raj", "Patel", mail="raj@example.org", ou="ICU",
                          employeeNumber=f"E{tree.tag}2")
    tree.add_person(f"ann{tree.tag}", "Ann", "Moss", mail="ann@example.org")
    tree.add_group(f"Nurses {tree.tag}", [kim, raj])


def test_first_sync_creates_people_with_groups_and_phones(
    tree: Tree, slapd: Slapd, db: Database, clock: FakeClock
) -> None:
    _seed(tree)
    report = _run(db, clock, tree.config(slapd.url))
    assert report.full and report.roster == 3 and report.fetched == 3  # three pages of two... and one
    assert report.count("create") == 3 and report.count("error") == 0
    kim = _person(db, f"kim{tree.tag}")
    assert (kim.given_name, kim.family_name, kim.email, kim.title, kim.kronos_id) == (
        "Kim", "Lee", "kim@example.org", "RN", f"E{tree.tag}1")
    assert kim.active and kim.profession == "tech"
    with db.unit_of_work() as session:
        dept = session.get(Person, kim.id)
        assert dept is not None and dept.department is not None and dept.department.code == "4W"
        group = session.execute(select(Group).where(Group.name == f"Nurses {tree.tag}")).scalar_one()
        assert group.code.startswith("ldap-")
        members = set(session.execute(select(GroupMember.person_id).where(GroupMember.group_id == group.id))
                      .scalars())
        assert members == {kim.id, _person(db, f"raj{tree.tag}").id}
        phones = list(session.execute(select(ContactPoint.value).where(ContactPoint.person_id == kim.id,
                                                                        ContactPoint.kind == "phone")).scalars())
        assert phones == ["+1 555 0101"]
        audit = session.execute(select(AuditEntry).where(AuditEntry.action == "ldap.sync")
                                .order_by(AuditEntry.seq.desc())).scalars().first()
        assert audit is not None and audit.detail["create"] == 3
    again = _run(db, clock, tree.config(slapd.url))
    assert not again.full and again.fetched == 0 and again.changes == []


def test_dry_run_reports_and_changes_nothing(tree: Tree, slapd: Slapd, db: Database, clock: FakeClock) -> None:
    _seed(tree)
    with db.unit_of_work() as session:
        before = session.execute(select(func.count()).select_from(Person)).scalar_one()
    report = _run(db, clock, tree.config(slapd.url), dry_run=True)
    assert report.dry_run and report.count("create") == 3
    assert {c.username for c in report.changes} == {f"kim{tree.tag}", f"raj{tree.tag}", f"ann{tree.tag}"}
    with db.unit_of_work() as session:
        assert session.execute(select(func.count()).select_from(Person)).scalar_one() == before
    real = _run(db, clock, tree.config(slapd.url))
    assert real.full and real.count("create") == 3  # the dry run left no watermark behind


def test_incremental_run_reads_only_changes_and_deactivates_leavers(
    tree: Tree, slapd: Slapd, db: Database, clock: FakeClock, client: TestClient
) -> None:
    _seed(tree)
    _run(db, clock, tree.config(slapd.url))
    # Ann has a password and is signed in on her phone when she leaves.
    with db.unit_of_work() as session:
        from carerelay.auth.service import set_password

        set_password(session=session, person_id=_person(db, f"ann{tree.tag}").id, password="ann-password-1",
                     clock=clock)
    ann = sign_in(client, f"ann{tree.tag}", "ann-password-1")
    tree.modify(tree.person_dn(f"kim{tree.tag}"), mail="kim.lee@example.org", title="Charge RN")
    tree.conn.delete(tree.person_dn(f"ann{tree.tag}"))
    clock.advance(hours=1)

    report = _run(db, clock, tree.config(slapd.url))
    assert not report.full and report.roster == 2 and report.fetched == 1
    assert [(c.action, c.username, sorted(c.fields)) for c in report.changes if c.action == "update"] == [
        ("update", f"kim{tree.tag}", ["email", "title"])]
    assert [c.username for c in report.changes if c.action == "deactivate"] == [f"ann{tree.tag}"]
    kim = _person(db, f"kim{tree.tag}")
    assert kim.email == "kim.lee@example.org" and kim.title == "Charge RN"
    assert _person(db, f"ann{tree.tag}").active is False
    assert client.get("/api/auth/me", headers=ann).status_code == 401

    # Ann comes back: the person the sync deactivated is reactivated, with the same id.
    tree.add_person(f"ann{tree.tag}", "Ann", "Moss", mail="ann@example.org")
    back = _run(db, clock, tree.config(slapd.url))
    assert [c.action for c in back.changes] == ["reactivate"]
    assert _person(db, f"ann{tree.tag}").active is True


def test_progress_is_reported_stage_by_stage(tree: Tree, slapd: Slapd, db: Database, clock: FakeClock) -> None:
    _seed(tree)
    seen: list[tuple[str, int, int | None]] = []

    def note(stage: str, done: int, total: int | None) -> None:
        seen.append((stage, done, total))

    _run(db, clock, tree.config(slapd.url), progress=note)
    assert seen == [("reading the directory", n, None) for n in (1, 2, 3)] + \
        [("comparing", n, 3) for n in (1, 2, 3)] + [("applying", n, 3) for n in (1, 2, 3)]

    tree.modify(tree.person_dn(f"raj{tree.tag}"), title="Charge RN")
    seen.clear()
    _run(db, clock, tree.config(slapd.url), progress=note)
    assert seen == [("reading the roster", n, None) for n in (1, 2, 3)] + [("reading changes", 1, None),
                                                                           ("comparing", 1, 1), ("applying", 1, 1)]
    seen.clear()
    _run(db, clock, tree.config(slapd.url), progress=note, dry_run=True, full=True)
    assert [stage for stage, _, _ in seen] == ["reading the directory"] * 3 + ["comparing"] * 3  # nothing applied


def test_group_membership_follows_the_directory(tree: Tree, slapd: Slapd, db: Database, clock: FakeClock) -> None:
    _seed(tree)
    _run(db, clock, tree.config(slapd.url))
    group_dn = f"cn=Nurses {tree.tag},ou=groups,{tree.base}"
    tree.modify(group_dn, member=tree.person_dn(f"kim{tree.tag}"))  # Raj leaves the group
    report = _run(db, clock, tree.config(slapd.url, incremental="off"))
    assert report.full
    assert [(c.username, c.fields) for c in report.changes] == [(f"raj{tree.tag}", ["groups"])]
    with db.unit_of_work() as session:
        group = session.execute(select(Group).where(Group.name == f"Nurses {tree.tag}")).scalar_one()
        members = list(session.execute(select(GroupMember.person_id).where(GroupMember.group_id == group.id))
                       .scalars())
    assert members == [_person(db, f"kim{tree.tag}").id]


def test_a_bad_entry_is_reported_and_the_rest_proceeds(
    tree: Tree, slapd: Slapd, db: Database, clock: FakeClock
) -> None:
    tree.add_person(f"one{tree.tag}", "One", "First", employeeNumber=f"DUP{tree.tag}")
    tree.add_person(f"two{tree.tag}", "Two", "Second", employeeNumber=f"DUP{tree.tag}")
    tree.add_person(f"three{tree.tag}", "Three", "Third")
    report = _run(db, clock, tree.config(slapd.url))
    assert report.count("create") == 2 and report.count("error") == 1
    error = next(c for c in report.changes if c.action == "error")
    assert "kronos_id" in error.detail
    assert _person(db, f"three{tree.tag}").active


def test_modify_timestamp_mode_catches_a_change_in_the_same_second(
    tree: Tree, slapd: Slapd, db: Database, clock: FakeClock
) -> None:
    _seed(tree)
    config = tree.config(slapd.url, incremental="modifyTimestamp")
    _run(db, clock, config)
    tree.modify(tree.person_dn(f"raj{tree.tag}"), title="Charge RN")
    report = _run(db, clock, config)
    assert not report.full
    assert [(c.username, c.fields) for c in report.changes] == [(f"raj{tree.tag}", ["title"])]


def test_unreachable_directory_is_one_clear_error(db: Database, clock: FakeClock) -> None:
    from carerelay.core.errors import Invalid
    from tests.servers import free_port

    config = ldap.LdapConfig(url=f"ldap://127.0.0.1:{free_port()}", bind_dn="", bind_password="", base_dn=SUFFIX,
                             user_filter="(objectClass=*)", attributes={"username": "uid"}, timeout_seconds=2)
    with pytest.raises(Invalid, match="cannot reach or bind"):
        ldap.Ldap3Directory(config)
    with pytest.raises(Invalid, match="unknown field 'phone_number'"):
        ldap.parse_attribute_map("username=uid,phone_number=telephoneNumber")


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_cli_dry_run_then_sync(tree: Tree, slapd: Slapd, tmp_path: Path, database: str) -> None:
    """As an operator runs it, against a database of its own (the CLI commits for real)."""
    _seed(tree)
    with fresh_backend(database, tmp_path) as backend:
        _cli_dry_run_then_sync(tree, slapd, tmp_path, backend.cli_url())


def _cli_dry_run_then_sync(tree: Tree, slapd: Slapd, tmp_path: Path, url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    env = {**os.environ, "CARERELAY_DATABASE_URL": url, "CARERELAY_LDAP_URL": slapd.url,
           "CARERELAY_LDAP_BIND_DN": f"cn=admin,{SUFFIX}", "CARERELAY_LDAP_BIND_PASSWORD": "test-root-secret",
           "CARERELAY_LDAP_BASE_DN": f"ou=people,{tree.base}", "CARERELAY_LDAP_USER_FILTER": "(objectClass=person)",
           "CARERELAY_LDAP_ATTRIBUTES": OPENLDAP_MAP, "CARERELAY_LDAP_EMPLOYEE_ID_FIELD": "kronos_id",
           "CARERELAY_LDAP_INCREMENTAL": "entryCSN", "CARERELAY_ENV_FILE": str(tmp_path / "none.env")}
    cli = [sys.executable, "-m", "carerelay", "ldap", "sync"]
    dry = subprocess.run([*cli, "--dry-run"], env=env, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "DRY RUN" in dry.stdout and "3 create" in dry.stdout and f"kim{tree.tag}" in dry.stdout
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Person)).scalar_one() == 0
    real = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
    assert real.returncode == 0, real.stderr
    assert "3 create" in real.stdout and "applied" in real.stdout
    with engine.connect() as conn:
        names = set(conn.execute(select(Person.username)).scalars())
    engine.dispose()
    assert names == {f"kim{tree.tag}", f"raj{tree.tag}", f"ann{tree.tag}"}
    unconfigured = subprocess.run(cli, env={**env, "CARERELAY_LDAP_URL": ""}, capture_output=True, text=True,
                                  timeout=120)
    assert unconfigured.returncode == 2 and "LDAP sync is not configured" in unconfigured.stderr

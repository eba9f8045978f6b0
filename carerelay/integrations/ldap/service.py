"""LDAP / Active Directory sync with ldap3.

A run has two passes over the directory, both paged searches:

1. the *roster*: every entry matching the user filter, with only its stable id and change marker;
   it tells who is still there (entries gone or no longer matching are leavers);
2. the *changes*: full attributes of the entries changed since the last run's watermark
   (``modifyTimestamp>=…`` or ``uSNChanged>=…``), or of every entry on a full run.

From these a plan is made (create, update, reactivate, deactivate, group membership) and — unless
it is a dry run — applied through ``directory.service``, one savepoint per person so one bad entry
(say, an employee id another person already has) is reported and the rest of the run proceeds.
Deactivating a person ends their sessions. The run is audited as ``ldap.sync``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import CarerelayError, Invalid
from carerelay.directory import service as directory
from carerelay.directory.models import EXTERNAL_ID_FIELDS, ContactPoint, Group, GroupKind, Person
from carerelay.integrations.ldap.models import LdapLink, LdapSyncState
from carerelay.integrations.provisioning import default_roles, department_id_by_name

FIELDS = ("username", "email", "phone", "department", "employee_id", "given_name", "family_name", "title", "groups")
ID_ATTRIBUTES = ("entryUUID", "objectGUID")
GROUP_PREFIX = "ldap-"
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]*$")

Progress = Callable[[str, int, int | None], None]
"""(stage, done, total or None): for a progress bar."""


@dataclass(frozen=True)
class LdapConfig:
    url: str
    bind_dn: str
    bind_password: str
    base_dn: str
    user_filter: str
    attributes: dict[str, str]
    employee_id_field: str = "unique_id"
    incremental: str = "modifyTimestamp"
    page_size: int = 500
    deactivate_missing: bool = True
    start_tls: bool = False
    timeout_seconds: float = 15.0
    default_profession: str = "tech"

    @property
    def source(self) -> str:
        return f"{self.url}|{self.base_dn}".lower()[:300]


def parse_attribute_map(text: str) -> dict[str, str]:
    """``username=uid,email=mail`` → {"username": "uid", …}; unknown fields are refused by name."""
    found: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        ours, sep, theirs = part.partition("=")
        ours, theirs = ours.strip(), theirs.strip()
        if not sep or not theirs:
            raise Invalid(f"attribute map entry {part.strip()!r} is not field=attribute", field="ldap_attributes")
        if ours not in FIELDS:
            raise Invalid(f"attribute map names unknown field {ours!r}; fields are {', '.join(FIELDS)}",
                          field="ldap_attributes")
        found[ours] = theirs
    if "username" not in found:
        raise Invalid("the attribute map needs username=<attribute> (sAMAccountName, uid…)", field="ldap_attributes")
    return found


def config_from_settings(settings: Any) -> LdapConfig:
    if not settings.ldap_url or not settings.ldap_base_dn:
        raise Invalid("LDAP sync is not configured: set CARERELAY_LDAP_URL and CARERELAY_LDAP_BASE_DN",
                      field="ldap_url")
    return LdapConfig(
        url=settings.ldap_url, bind_dn=settings.ldap_bind_dn, bind_password=settings.ldap_bind_password,
        base_dn=settings.ldap_base_dn, user_filter=settings.ldap_user_filter,
        attributes=parse_attribute_map(settings.ldap_attributes), employee_id_field=settings.ldap_employee_id_field,
        incremental=settings.ldap_incremental, page_size=settings.ldap_page_size,
        deactivate_missing=settings.ldap_deactivate_missing, start_tls=settings.ldap_start_tls,
        timeout_seconds=settings.ldap_timeout_seconds, default_profession=settings.provisioning_default_profession,
    )


# -- reading the directory ----------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    key: str
    dn: str
    marker: str | None
    values: dict[str, list[str]] = field(default_factory=dict)

    def first(self, attribute: str | None) -> str | None:
        if attribute is None:
            return None
        found = self.values.get(attribute.lower()) or []
        return found[0].strip() if found and found[0].strip() else None

    def all(self, attribute: str | None) -> list[str]:
        return [] if attribute is None else list(self.values.get(attribute.lower()) or [])


class Directory(Protocol):
    def search(self, search_filter: str, attributes: list[str]) -> Iterator[Entry]: ...


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


class Ldap3Directory:
    """ldap3, bound once, reading with the paged-results control (RFC 2696)."""

    def __init__(self, config: LdapConfig) -> None:
        import ldap3
        from ldap3.core.exceptions import LDAPException

        self._config = config
        self._marker = config.incremental if config.incremental in ("uSNChanged", "entryCSN") else "modifyTimestamp"
        timeout = max(1, math.ceil(config.timeout_seconds))  # ldap3 packs these into socket options: whole seconds
        server = ldap3.Server(config.url, get_info=ldap3.NONE, connect_timeout=timeout)
        try:
            self._conn = ldap3.Connection(server, user=config.bind_dn or None, password=config.bind_password or None,
                                          receive_timeout=timeout, raise_exceptions=True,
                                          read_only=True)
            self._conn.open()
            if config.start_tls:
                self._conn.start_tls()
            self._conn.bind()
        except LDAPException as exc:
            raise Invalid(f"cannot reach or bind to {config.url} as {config.bind_dn or 'anonymous'}: {exc}",
                          field="ldap_url") from exc

    def close(self) -> None:
        self._conn.unbind()

    def search(self, search_filter: str, attributes: list[str]) -> Iterator[Entry]:
        from ldap3.core.exceptions import LDAPException

        wanted = sorted({*attributes, *ID_ATTRIBUTES, self._marker})
        try:
            results = self._conn.extend.standard.paged_search(
                self._config.base_dn, search_filter, attributes=wanted, paged_size=self._config.page_size,
                generator=True)
            for item in results:
                if item.get("type") != "searchResEntry":
                    continue
                raw: dict[str, list[bytes]] = item.get("raw_attributes") or {}
                values = {name.lower(): [_text(v) for v in vals] for name, vals in raw.items()
                          if name.lower() != "objectguid"}
                guid = raw.get("objectGUID") or raw.get("objectguid")
                key = guid[0].hex() if guid else (values.get("entryuuid") or [item["dn"].lower()])[0]
                markers = values.get(self._marker.lower()) or []
                marker = markers[0] if markers else None
                yield Entry(key=key, dn=item["dn"], marker=marker, values=values)
        except LDAPException as exc:
            raise Invalid(f"LDAP search under {self._config.base_dn} with {search_filter} failed: {exc}",
                          field="ldap_user_filter") from exc


# -- the plan -----------------------------------------------------------------------------------

@dataclass
class Change:
    action: str  # create | update | reactivate | deactivate | error
    username: str
    dn: str
    fields: list[str] = field(default_factory=list)
    detail: str = ""
    values: dict[str, Any] = field(default_factory=dict, repr=False)
    groups: list[str] | None = field(default=None, repr=False)
    phone: str | None = field(default=None, repr=False)
    person_id: int | None = None
    entry_key: str = ""


@dataclass
class SyncReport:
    dry_run: bool
    full: bool
    roster: int = 0
    fetched: int = 0
    unchanged: int = 0
    changes: list[Change] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)

    def summary(self) -> dict[str, int]:
        return {"roster": self.roster, "fetched": self.fetched, "unchanged": self.unchanged,
                **{a: self.count(a) for a in ("create", "update", "reactivate", "deactivate", "error")}}


def _group_name(dn: str) -> str:
    first = dn.split(",", 1)[0]
    _attr, _sep, value = first.partition("=")
    return (value or first).strip()


def _group_code(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "group"
    return (GROUP_PREFIX + slug)[:60]


def _person_values(session: Session, entry: Entry, config: LdapConfig) -> dict[str, Any]:
    amap = config.attributes
    username = (entry.first(amap["username"]) or "").lower()
    if not username or len(username) > 120 or not _USERNAME.match(username):
        raise Invalid(f"{amap['username']} {username!r} is not a usable user name")
    given = entry.first(amap.get("given_name")) or ""
    family = entry.first(amap.get("family_name")) or ""
    if not given and not family:
        given = username
    values: dict[str, Any] = {"username": username, "given_name": given[:120], "family_name": family[:120]}
    if "email" in amap:
        values["email"] = entry.first(amap["email"])
    if "title" in amap:
        title = entry.first(amap["title"])
        values["title"] = title[:60] if title else None
    if "department" in amap:
        values["department_id"] = department_id_by_name(session, entry.first(amap["department"]))
    if "employee_id" in amap:
        if config.employee_id_field not in EXTERNAL_ID_FIELDS:
            raise Invalid(f"{config.employee_id_field} is not an external id field", field="ldap_employee_id_field")
        values[config.employee_id_field] = entry.first(amap["employee_id"])
    return values


def _link(session: Session, source: str, key: str) -> LdapLink | None:
    return session.execute(
        select(LdapLink).where(LdapLink.source == source, LdapLink.entry_key == key)
    ).scalar_one_or_none()


def _plan_entry(session: Session, entry: Entry, config: LdapConfig) -> Change | None:
    try:
        values = _person_values(session, entry, config)
    except Invalid as exc:
        return Change("error", entry.first(config.attributes["username"]) or "?", entry.dn, detail=exc.message,
                      entry_key=entry.key)
    groups = sorted({_group_name(dn) for dn in entry.all(config.attributes.get("groups"))}) \
        if "groups" in config.attributes else None
    phone = entry.first(config.attributes.get("phone"))
    link = _link(session, config.source, entry.key)
    person = session.get(Person, link.person_id) if link is not None else None
    if person is None:
        # Not linked to this entry yet: an existing account by user name (made by hand, by SCIM, or
        # linked to an entry that was deleted and created again, which gets a new entryUUID).
        person = session.execute(select(Person).where(Person.username == values["username"])).scalar_one_or_none()
        if person is not None:
            link = session.execute(select(LdapLink).where(LdapLink.person_id == person.id)).scalar_one_or_none()
    if person is None:
        fields = sorted([*values, *(["phone"] if phone else []), *(["groups"] if groups else [])])
        return Change("create", values["username"], entry.dn, fields, values=values, groups=groups,
                      phone=phone, entry_key=entry.key)
    changed = [k for k, v in values.items() if getattr(person, k) != v]
    if groups is not None:
        current = sorted(_group_code(n) for n in _ldap_group_names(session, person.id))
        if current != sorted({_group_code(g) for g in groups}):
            changed.append("groups")
    if phone and not session.execute(select(ContactPoint.id).where(
            ContactPoint.person_id == person.id, ContactPoint.kind == "phone", ContactPoint.value == phone)).first():
        changed.append("phone")
    reactivate = not person.active and link is not None and link.deactivated_at is not None
    if not changed and not reactivate and link is not None and link.entry_key == entry.key:
        return None
    action = "reactivate" if reactivate else "update"
    return Change(action, person.username, entry.dn, changed, values={k: values[k] for k in changed if k in values},
                  groups=groups, phone=phone, person_id=person.id, entry_key=entry.key)


def _ldap_group_names(session: Session, person_id: int) -> list[str]:
    table = directory_member_table()
    return list(session.execute(
        select(Group.name).join(table, table.c.group_id == Group.id)
        .where(table.c.person_id == person_id, Group.code.startswith(GROUP_PREFIX))).scalars())


def directory_member_table() -> Any:
    from carerelay.directory.models import GroupMember

    return GroupMember.__table__


# -- applying it --------------------------------------------------------------------------------

def _ensure_group(session: Session, clock: Clock, actor: Actor, name: str) -> int:
    code = _group_code(name)
    found = session.execute(select(Group.id).where(Group.code == code)).scalar_one_or_none()
    if found is not None:
        return int(found)
    group = directory.create_group(session=session, clock=clock, actor=actor, kind=GroupKind.GROUP.value, code=code,
                                   name=name[:200], description="Kept in step with the LDAP directory")
    return group.id


def _apply_groups(session: Session, clock: Clock, actor: Actor, person_id: int, names: list[str]) -> None:
    table = directory_member_table()
    wanted = {_ensure_group(session, clock, actor, n) for n in names}
    have = set(session.execute(
        select(Group.id).join(table, table.c.group_id == Group.id)
        .where(table.c.person_id == person_id, Group.code.startswith(GROUP_PREFIX))).scalars())
    for gid in sorted(wanted - have):
        directory.add_group_member(session=session, clock=clock, actor=actor, group_id=gid, person_id=person_id)
    for gid in sorted(have - wanted):
        directory.remove_group_member(session=session, clock=clock, actor=actor, group_id=gid, person_id=person_id)


def _apply(session: Session, clock: Clock, actor: Actor, config: LdapConfig, change: Change) -> None:
    now = clock.now()
    if change.action == "create":
        profession = config.default_profession
        person = directory.create_person(session=session, clock=clock, actor=actor, data={
            **change.values, "profession": profession, "roles": default_roles(profession)})
        person_id = person.id
    else:
        assert change.person_id is not None
        person_id = change.person_id
        updates = dict(change.values)
        if change.action == "reactivate":
            updates["active"] = True
        if updates:
            directory.update_person(session=session, clock=clock, actor=actor, person_id=person_id, changes=updates)
    if change.groups is not None:
        _apply_groups(session, clock, actor, person_id, change.groups)
    if change.phone and (change.action == "create" or "phone" in change.fields):
        directory.add_contact_point(session=session, clock=clock, actor=actor, person_id=person_id, kind="phone",
                                    value=change.phone, label="directory")
    link = _link(session, config.source, change.entry_key)
    if link is None:
        link = session.execute(select(LdapLink).where(LdapLink.person_id == person_id)).scalar_one_or_none()
        if link is None:
            link = LdapLink(source=config.source, entry_key=change.entry_key, person_id=person_id, dn=change.dn,
                            synced_at=now)
            session.add(link)
        link.source, link.entry_key = config.source, change.entry_key
    link.dn = change.dn
    link.synced_at = now
    link.deactivated_at = None
    session.flush()


def _deactivate(session: Session, clock: Clock, actor: Actor, link: LdapLink) -> None:
    directory.update_person(session=session, clock=clock, actor=actor, person_id=link.person_id,
                            changes={"active": False})
    link.deactivated_at = clock.now()
    session.flush()


def _changed_filter(config: LdapConfig, watermark: str) -> str:
    if config.incremental == "uSNChanged":
        return f"(&{config.user_filter}(uSNChanged>={int(watermark) + 1}))"
    if config.incremental == "entryCSN":
        # Strictly newer: the CSN is unique per change (microseconds and a counter).
        return f"(&{config.user_filter}(entryCSN>={watermark})(!(entryCSN<={watermark})))"
    # modifyTimestamp has one-second resolution: >= re-reads the last second rather than miss a change in it.
    return f"(&{config.user_filter}(modifyTimestamp>={watermark}))"


def _newest(markers: list[str | None], incremental: str) -> str | None:
    present = [m for m in markers if m]
    if not present:
        return None
    if incremental == "uSNChanged":
        return str(max(int(m) for m in present))
    return max(present)


def sync(
    *, session: Session, clock: Clock, actor: Actor, config: LdapConfig, directory_reader: Directory,
    dry_run: bool = False, full: bool = False, progress: Progress | None = None,
) -> SyncReport:
    """Bring the people of one LDAP source up to date; a dry run plans and reports but writes nothing."""
    note: Progress = progress or (lambda stage, done, total: None)
    state = session.get(LdapSyncState, config.source)
    watermark = state.watermark if state is not None else None
    full = full or watermark is None or config.incremental == "off"
    report = SyncReport(dry_run=dry_run, full=full)
    attributes = sorted(set(config.attributes.values()))

    roster: dict[str, str | None] = {}
    fetched: list[Entry] = []
    if full:
        for entry in directory_reader.search(config.user_filter, attributes):
            roster[entry.key] = entry.marker
            fetched.append(entry)
            note("reading the directory", len(fetched), None)
    else:
        assert watermark is not None
        for entry in directory_reader.search(config.user_filter, []):
            roster[entry.key] = entry.marker
            note("reading the roster", len(roster), None)
        for entry in directory_reader.search(_changed_filter(config, watermark), attributes):
            fetched.append(entry)
            note("reading changes", len(fetched), None)
    report.roster, report.fetched = len(roster), len(fetched)

    for done, entry in enumerate(fetched, 1):
        change = _plan_entry(session, entry, config)
        note("comparing", done, len(fetched))
        if change is None:
            report.unchanged += 1
            continue
        report.changes.append(change)

    leavers: list[LdapLink] = []
    if config.deactivate_missing:
        links = session.execute(select(LdapLink).where(LdapLink.source == config.source,
                                                       LdapLink.deactivated_at.is_(None))).scalars()
        for link in links:
            person = session.get(Person, link.person_id)
            if link.entry_key not in roster and person is not None and person.active:
                leavers.append(link)
                report.changes.append(Change("deactivate", person.username, link.dn, ["active"],
                                             detail="no longer in the directory or the filter",
                                             person_id=person.id, entry_key=link.entry_key))
    if dry_run:
        return report

    todo = [c for c in report.changes if c.action in ("create", "update", "reactivate")]
    for done, change in enumerate(todo, 1):
        try:
            with session.begin_nested():
                _apply(session, clock, actor, config, change)
        except CarerelayError as exc:
            change.action, change.detail = "error", exc.message
        note("applying", done, len(todo))
    for link in leavers:
        _deactivate(session, clock, actor, link)

    if state is None:
        state = LdapSyncState(source=config.source)
        session.add(state)
    newest = _newest(list(roster.values()), config.incremental)
    if newest is not None and config.incremental != "off":
        state.watermark = newest
    state.last_run_at = clock.now()
    if full:
        state.last_full_run_at = clock.now()
    errors = [f"{c.dn}: {c.detail}" for c in report.changes if c.action == "error"][:20]
    audit.record(session=session, clock=clock, actor=actor, action="ldap.sync", object_type="ldap_source",
                 object_id=config.source[:100], outcome="success" if not errors else "partial",
                 detail={**report.summary(), "full": full, "errors": errors})
    session.flush()
    return report

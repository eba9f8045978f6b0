"""SCIM provisioning: tokens, and Users and Groups mapped onto the directory.

Every write goes through ``directory.service`` (so it is validated and audited the same way as an
administrator's change) and is additionally audited as ``scim.*`` naming the identity provider.
Deactivating a person (``active=false`` or DELETE) ends all their sessions.

Errors are ``carerelay.core.errors`` carrying a SCIM ``scimType`` (:class:`ScimInvalid`); the HTTP
adapter turns them into SCIM error bodies.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from scim2_models import (
    Context,
    EnterpriseUser,
    GroupMember,
    Meta,
    PatchOp,
    SCIMException,
)
from scim2_models.path import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)
from sqlalchemy import ColumnElement, Select, and_, exists, false, func, not_, or_, select, true
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import Conflict, Invalid, NotFound, Unauthenticated
from carerelay.directory import service as directory
from carerelay.directory.models import Group, GroupKind, Person
from carerelay.directory.models import GroupMember as DirGroupMember
from carerelay.integrations.provisioning import default_roles, department_id_by_name, profession_or
from carerelay.integrations.scim.models import ScimResource, ScimToken
from carerelay.integrations.scim.resources import (
    MAX_RESULTS,
    POLICY,
    CarerelayUser,
    ScimGroup,
    ScimUser,
)

USER = "User"
GROUP = "Group"
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]*$")
_NPI = re.compile(r"^\d{10}$")
# Our extension's attributes and the Person columns they fill, with the column's length.
EXT_COLUMNS: dict[str, tuple[str, int]] = {
    "unique_id": ("unique_id", 120),
    "custom1": ("custom1", 120),
    "custom2": ("custom2", 120),
    "custom3": ("custom3", 120),
    "custom4": ("custom4", 120),
    "ehr_username": ("ehr_username", 120),
    "npi": ("npi", 10),
    "epic_ser_id": ("epic_ser_id", 120),
    "ms_upn": ("ms_upn", 254),
    "kronos_id": ("kronos_id", 120),
}
_EXT_SCIM_NAMES = {
    "unique_id": "uniqueId", "ehr_username": "ehrUsername", "epic_ser_id": "epicSerId", "ms_upn": "msUpn",
    "kronos_id": "kronosId",
}


class ScimInvalid(Invalid):
    """A request SCIM refuses with 400 and this ``scimType`` (invalidValue, invalidFilter, mutability…)."""

    def __init__(self, message: str, *, scim_type: str = "invalidValue", field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.scim_type = scim_type


class ScimNotImplemented(Invalid):
    """A request for something this service provider does not do (HTTP 501)."""


def scim_invalid_from(exc: SCIMException | ValidationError) -> ScimInvalid:
    if isinstance(exc, SCIMException):
        return ScimInvalid(str(exc), scim_type=exc.scim_type or "invalidValue")
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body",))
    ctx = first.get("ctx") or {}
    # RFC 7644 §3.12: an attribute no schema defines is a malformed body (invalidSyntax); a missing
    # or wrong value is invalidValue.
    fallback = "invalidSyntax" if first.get("type") == "extra_forbidden" else "invalidValue"
    scim_type = str(ctx.get("scim_type") or fallback)
    return ScimInvalid(f"{where}: {first.get('msg')}" if where else str(first.get("msg")), scim_type=scim_type)


# -- tokens -------------------------------------------------------------------------------------

def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class NewToken:
    id: int
    provider: str
    token: str


def create_token(*, session: Session, clock: Clock, actor: Actor, provider: str) -> NewToken:
    """A new bearer token for one identity provider; the token is shown once and stored hashed."""
    name = provider.strip()
    if not name or len(name) > 80:
        raise Invalid("the identity provider needs a name of 1 to 80 characters", field="provider")
    token = "scim_" + secrets.token_urlsafe(32)
    row = ScimToken(provider=name, token_hash=_hash(token), created_at=clock.now(), created_by=actor.username)
    session.add(row)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="scim.create_token", object_type="scim_token",
                 object_id=row.id, detail={"provider": name})
    return NewToken(row.id, name, token)


def list_tokens(*, session: Session) -> list[ScimToken]:
    return list(session.execute(select(ScimToken).order_by(ScimToken.id)).scalars())


def revoke_token(*, session: Session, clock: Clock, actor: Actor, token_id: int) -> ScimToken:
    row = session.get(ScimToken, token_id)
    if row is None:
        raise NotFound(f"no SCIM token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = clock.now()
    audit.record(session=session, clock=clock, actor=actor, action="scim.revoke_token", object_type="scim_token",
                 object_id=token_id, detail={"provider": row.provider})
    return row


def authenticate_token(*, session: Session, clock: Clock, token: str) -> ScimToken:
    row = session.execute(select(ScimToken).where(ScimToken.token_hash == _hash(token))).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        raise Unauthenticated("unknown or revoked SCIM token")
    now = clock.now()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        row.last_used_at = now
    return row


# -- shared helpers -----------------------------------------------------------------------------

def _limit(value: str | None, length: int, attribute: str) -> str | None:
    if value is not None and len(value) > length:
        raise ScimInvalid(f"{attribute} is longer than {length} characters", field=attribute)
    return value


def _meta(row: ScimResource | None, kind: str, location: str, created: datetime, modified: datetime) -> Meta:
    version = row.version if row is not None else 1
    return Meta(resource_type=kind, created=created, last_modified=modified, location=location,
                version=f'W/"{version}"')


def _stored_document(obj: ScimUser | ScimGroup) -> dict[str, Any]:
    # The response view drops write-only attributes: a password sent over SCIM is not kept
    # (people sign in through SSO or a password an administrator sets).
    data = obj.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    for key in ("id", "meta", "groups"):
        data.pop(key, None)
    return data


def _scim_row(session: Session, *, person_id: int | None = None, group_id: int | None = None) -> ScimResource | None:
    query = select(ScimResource)
    query = query.where(ScimResource.person_id == person_id) if person_id is not None else query.where(
        ScimResource.group_id == group_id)
    return session.execute(query).scalar_one_or_none()


def _check_external_id(session: Session, kind: str, external_id: str | None, exclude: int | None) -> None:
    if external_id is None:
        return
    _limit(external_id, 255, "externalId")
    query = select(ScimResource.id).where(ScimResource.resource_type == kind,
                                          ScimResource.external_id == external_id,
                                          ScimResource.deleted_at.is_(None))
    if exclude is not None:
        query = query.where(ScimResource.id != exclude)
    if session.execute(query).first():
        raise Conflict(f"another {kind} already has externalId {external_id!r}", field="externalId")


# -- users --------------------------------------------------------------------------------------

def _primary(values: list[Any] | None) -> Any:
    if not values:
        return None
    return next((v for v in values if getattr(v, "primary", False)), values[0])


def _person_values(session: Session, user: ScimUser, *, default_profession: str) -> dict[str, Any]:
    """The directory fields a SCIM user sets; everything else stays in the stored document."""
    if not user.user_name or not user.user_name.strip():
        raise ScimInvalid("userName is required", field="userName")
    username = user.user_name.strip().lower()
    if len(username) > 120 or not _USERNAME.match(username):
        raise ScimInvalid("userName must be 1-120 letters, digits or . _ @ - (starting with a letter or digit)",
                          field="userName")
    name = user.name
    given = (name.given_name if name else None) or ""
    family = (name.family_name if name else None) or ""
    if not given and not family:
        given = user.display_name or username
    email = _primary(user.emails)
    email_value = getattr(email, "value", None)
    values: dict[str, Any] = {
        "username": username,
        "given_name": _limit(given.strip(), 120, "name.givenName"),
        "family_name": _limit(family.strip(), 120, "name.familyName"),
        "title": _limit(user.title, 60, "title"),
        "email": _limit(str(email_value) if email_value else None, 254, "emails"),
        "active": True if user.active is None else bool(user.active),
    }
    values["profession"] = profession_or(user.user_type, default_profession)
    enterprise = user[EnterpriseUser]
    values["department_id"] = department_id_by_name(session, enterprise.department if enterprise else None)
    ours = user[CarerelayUser]
    for attribute, (column, length) in EXT_COLUMNS.items():
        value = getattr(ours, attribute) if ours is not None else None
        scim_name = f"{_EXT_SCIM_NAMES.get(attribute, attribute)}"
        value = _limit(value.strip() if isinstance(value, str) else None, length, scim_name) or None
        if attribute == "npi" and value is not None and not _NPI.match(value):
            raise ScimInvalid("npi must be ten digits", field=scim_name)
        values[column] = value
    return values


def _groups_of(session: Session, person_id: int, base: str) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Group.id, Group.name)
        .join(DirGroupMember, DirGroupMember.group_id == Group.id)
        .join(ScimResource, ScimResource.group_id == Group.id)
        .where(DirGroupMember.person_id == person_id, ScimResource.deleted_at.is_(None))
        .order_by(Group.id)
    )
    return [{"value": str(gid), "$ref": f"{base}/Groups/{gid}", "display": name, "type": "direct"}
            for gid, name in rows]


def render_user(session: Session, person: Person, row: ScimResource | None, base: str) -> ScimUser:
    """The SCIM view: the stored document, overlaid with what the directory holds now."""
    doc: dict[str, Any] = dict(row.document) if row is not None else {"schemas": [str(ScimUser.__schema__)]}
    doc["id"] = str(person.id)
    doc["userName"] = person.username
    # An attribute the identity provider never sent (or removed) stays absent from its view, unless
    # the directory holds something it must know (a person an administrator deactivated).
    provisioned = row is not None
    if not provisioned or "active" in doc or not person.active:
        doc["active"] = person.active
    if not provisioned or doc.get("name"):
        name = dict(doc.get("name") or {})
        name["givenName"] = person.given_name or None
        name["familyName"] = person.family_name or None
        doc["name"] = {k: v for k, v in name.items() if v is not None} or None
    if person.title is not None or "title" in doc:
        doc["title"] = person.title
    if not provisioned and not doc.get("displayName"):
        doc["displayName"] = person.display_name
    if not doc.get("emails") and person.email:
        doc["emails"] = [{"value": person.email, "primary": True, "type": "work"}]
    ext_values = {_EXT_SCIM_NAMES.get(a, a): getattr(person, column) for a, (column, _n) in EXT_COLUMNS.items()}
    ext_values = {k: v for k, v in ext_values.items() if v is not None}
    schemas = list(doc.get("schemas") or [str(ScimUser.__schema__)])
    urn = str(CarerelayUser.__schema__)
    if ext_values:
        doc[urn] = ext_values
        if urn not in schemas:
            schemas.append(urn)
    else:
        doc.pop(urn, None)
        schemas = [s for s in schemas if s != urn]
    doc["schemas"] = schemas
    groups = _groups_of(session, person.id, base)
    if groups:
        doc["groups"] = groups
    doc["externalId"] = row.external_id if row is not None else None
    doc = {k: v for k, v in doc.items() if v is not None}
    user = ScimUser.model_validate(doc, scim_policy=POLICY)
    user.meta = _meta(row, USER, f"{base}/Users/{person.id}", person.created_at,
                      max(person.updated_at, row.updated_at) if row is not None else person.updated_at)
    return user


def _live_person(session: Session, person_id: str) -> tuple[Person, ScimResource | None]:
    person = session.get(Person, int(person_id)) if person_id.isdigit() else None
    row = _scim_row(session, person_id=person.id) if person is not None else None
    if person is None or (row is not None and row.deleted_at is not None):
        raise NotFound(f"no User {person_id}")
    return person, row


def get_user(*, session: Session, user_id: str, base: str) -> ScimUser:
    person, row = _live_person(session, user_id)
    return render_user(session, person, row, base)


def create_user(
    *, session: Session, clock: Clock, actor: Actor, provider: str, user: ScimUser, base: str,
    default_profession: str,
) -> ScimUser:
    values = _person_values(session, user, default_profession=default_profession)
    revived = _deleted_user_named(session, values["username"])
    if revived is not None:
        # The IdP deleted this person earlier and now provisions them again (re-hired, re-assigned
        # to the app): the same person comes back, with their history, rather than a 409.
        revived.deleted_at = None
        session.flush()
        return replace_user(session=session, clock=clock, actor=actor, provider=provider,
                            user_id=str(revived.person_id), user=user, base=base, action="scim.revive_user")
    _check_external_id(session, USER, user.external_id, None)
    roles = default_roles(values["profession"])
    active = values.pop("active")
    person = directory.create_person(session=session, clock=clock, actor=actor, data={**values, "roles": roles})
    if not active:
        directory.update_person(session=session, clock=clock, actor=actor, person_id=person.id,
                                changes={"active": False})
    now = clock.now()
    row = ScimResource(resource_type=USER, person_id=person.id, provider=provider, external_id=user.external_id,
                       display_name=user.display_name, document=_stored_document(user), version=1,
                       created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="scim.create_user", object_type="person",
                 object_id=person.id, detail={"provider": provider, "userName": person.username,
                                              "externalId": user.external_id})
    return render_user(session, person, row, base)


def _deleted_user_named(session: Session, username: str) -> ScimResource | None:
    return session.execute(
        select(ScimResource).join(Person, Person.id == ScimResource.person_id)
        .where(Person.username == username, ScimResource.deleted_at.is_not(None))
    ).scalar_one_or_none()


def replace_user(
    *, session: Session, clock: Clock, actor: Actor, provider: str, user_id: str, user: ScimUser, base: str,
    action: str = "scim.replace_user",
) -> ScimUser:
    person, row = _live_person(session, user_id)
    # Without a userType the person keeps the profession they have.
    values = _person_values(session, user, default_profession=person.profession)
    _check_external_id(session, USER, user.external_id, row.id if row is not None else None)
    changes = {k: v for k, v in values.items() if getattr(person, k) != v}
    if changes:
        directory.update_person(session=session, clock=clock, actor=actor, person_id=person.id, changes=changes)
    now = clock.now()
    if row is None:
        row = ScimResource(resource_type=USER, person_id=person.id, provider=provider, version=0, created_at=now,
                           document={})
        session.add(row)
    row.external_id = user.external_id
    row.display_name = user.display_name
    row.document = _stored_document(user)
    row.version += 1
    row.updated_at = now
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action=action, object_type="person",
                 object_id=person.id, detail={"provider": provider, "changed": sorted(changes)})
    return render_user(session, person, row, base)


def _apply_patch(resource: Any, patch: PatchOp[Any]) -> None:
    try:
        patch.patch(resource, scim_policy=POLICY)
    except SCIMException as exc:
        raise scim_invalid_from(exc) from exc
    except ValidationError as exc:
        raise scim_invalid_from(exc) from exc


def patch_user(
    *, session: Session, clock: Clock, actor: Actor, provider: str, user_id: str, patch: PatchOp[Any], base: str,
) -> ScimUser:
    """Apply the operations to the current view, then store the result as a replacement."""
    current = get_user(session=session, user_id=user_id, base=base)
    _apply_patch(current, patch)
    return replace_user(session=session, clock=clock, actor=actor, provider=provider, user_id=user_id,
                        user=current, base=base, action="scim.patch_user")


def delete_user(*, session: Session, clock: Clock, actor: Actor, provider: str, user_id: str) -> None:
    """SCIM DELETE deactivates (sessions end) and hides the user from SCIM; nothing is erased."""
    person, row = _live_person(session, user_id)
    if person.active:
        directory.update_person(session=session, clock=clock, actor=actor, person_id=person.id,
                                changes={"active": False})
    now = clock.now()
    if row is None:
        row = ScimResource(resource_type=USER, person_id=person.id, provider=provider, version=1, created_at=now,
                           document={})
        session.add(row)
    row.deleted_at = now
    row.updated_at = now
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="scim.delete_user", object_type="person",
                 object_id=person.id, detail={"provider": provider, "effect": "deactivated"})


# -- groups -------------------------------------------------------------------------------------

def _member_ids(session: Session, group: ScimGroup) -> list[int]:
    ids: list[int] = []
    for member in group.members or []:
        value = member.value or ""
        if member.type is not None and member.type != USER:
            raise ScimInvalid(f"member {value!r}: only users can be members; nested groups are not supported",
                              field="members")
        person = session.get(Person, int(value)) if value.isdigit() else None
        row = _scim_row(session, person_id=person.id) if person is not None else None
        if person is None or (row is not None and row.deleted_at is not None):
            raise ScimInvalid(f"member {value!r} is not a User here", field="members")
        ids.append(person.id)
    return sorted(set(ids))


def render_group(session: Session, group: Group, row: ScimResource, base: str) -> ScimGroup:
    doc: dict[str, Any] = dict(row.document)
    doc["id"] = str(group.id)
    doc["displayName"] = group.name
    sent = {str(m.get("value")): m for m in doc.get("members") or []}
    members = []
    for pid in directory.group_member_ids(session=session, group_id=group.id):
        members.append(sent.get(str(pid)) or {"value": str(pid), "$ref": f"{base}/Users/{pid}", "type": USER})
    doc["members"] = members or None
    doc["externalId"] = row.external_id
    doc = {k: v for k, v in doc.items() if v is not None}
    scim_group = ScimGroup.model_validate(doc, scim_policy=POLICY)
    scim_group.meta = _meta(row, GROUP, f"{base}/Groups/{group.id}", row.created_at, row.updated_at)
    return scim_group


def _live_group(session: Session, group_id: str) -> tuple[Group, ScimResource]:
    group = session.get(Group, int(group_id)) if group_id.isdigit() else None
    row = _scim_row(session, group_id=group.id) if group is not None else None
    if group is None or row is None or row.deleted_at is not None:
        raise NotFound(f"no Group {group_id}")
    return group, row


def get_group(*, session: Session, group_id: str, base: str) -> ScimGroup:
    group, row = _live_group(session, group_id)
    return render_group(session, group, row, base)


def _group_name(group: ScimGroup) -> str:
    name = (group.display_name or "").strip()
    if not name:
        raise ScimInvalid("displayName is required", field="displayName")
    return str(_limit(name, 200, "displayName"))


def create_group(
    *, session: Session, clock: Clock, actor: Actor, provider: str, group: ScimGroup, base: str
) -> ScimGroup:
    name = _group_name(group)
    _check_external_id(session, GROUP, group.external_id, None)
    members = _member_ids(session, group)
    created = directory.create_group(session=session, clock=clock, actor=actor, kind=GroupKind.GROUP.value,
                                     code="scim-" + secrets.token_hex(8), name=name, member_ids=members)
    now = clock.now()
    row = ScimResource(resource_type=GROUP, group_id=created.id, provider=provider, external_id=group.external_id,
                       display_name=name, document=_stored_document(group), version=1, created_at=now,
                       updated_at=now)
    session.add(row)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="scim.create_group", object_type="group",
                 object_id=created.id, detail={"provider": provider, "displayName": name, "members": members})
    return render_group(session, created, row, base)


def replace_group(
    *, session: Session, clock: Clock, actor: Actor, provider: str, group_id: str, group: ScimGroup, base: str,
    action: str = "scim.replace_group",
) -> ScimGroup:
    existing, row = _live_group(session, group_id)
    name = _group_name(group)
    _check_external_id(session, GROUP, group.external_id, row.id)
    wanted = set(_member_ids(session, group))
    have = set(directory.group_member_ids(session=session, group_id=existing.id))
    for pid in sorted(wanted - have):
        directory.add_group_member(session=session, clock=clock, actor=actor, group_id=existing.id, person_id=pid)
    for pid in sorted(have - wanted):
        directory.remove_group_member(session=session, clock=clock, actor=actor, group_id=existing.id,
                                      person_id=pid)
    if existing.name != name:
        directory.rename_group(session=session, clock=clock, actor=actor, group_id=existing.id, name=name)
    row.external_id = group.external_id
    row.display_name = name
    row.document = _stored_document(group)
    row.version += 1
    row.updated_at = clock.now()
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action=action, object_type="group",
                 object_id=existing.id, detail={"provider": provider, "added": sorted(wanted - have),
                                                "removed": sorted(have - wanted)})
    return render_group(session, existing, row, base)


def patch_group(
    *, session: Session, clock: Clock, actor: Actor, provider: str, group_id: str, patch: PatchOp[Any], base: str,
) -> ScimGroup:
    current = get_group(session=session, group_id=group_id, base=base)
    _apply_patch(current, patch)
    return replace_group(session=session, clock=clock, actor=actor, provider=provider, group_id=group_id,
                         group=current, base=base, action="scim.patch_group")


def delete_group(*, session: Session, clock: Clock, actor: Actor, provider: str, group_id: str) -> None:
    """The group stops existing for SCIM and loses its members; the row and its history stay."""
    group, row = _live_group(session, group_id)
    for pid in directory.group_member_ids(session=session, group_id=group.id):
        directory.remove_group_member(session=session, clock=clock, actor=actor, group_id=group.id, person_id=pid)
    now = clock.now()
    row.deleted_at = now
    row.updated_at = now
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="scim.delete_group", object_type="group",
                 object_id=group.id, detail={"provider": provider})


# -- queries: SCIM filters as SQL ---------------------------------------------------------------

@dataclass(frozen=True)
class ListQuery:
    filter: FilterNode | None = None
    start_index: int = 1
    count: int = 100
    sort_by: str | None = None
    descending: bool = False


@dataclass(frozen=True)
class ListResult:
    total: int
    start_index: int
    resources: list[Any]


def _attr_key(path: AttrPath) -> str:
    name = path.attr.lower()
    if path.sub_attr:
        name += "." + path.sub_attr.lower()
    return name


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class _Column:
    expr: Any
    kind: str  # "ci" (case-blind string), "cs" (case-exact string), "bool", "int"


def _user_columns() -> dict[str, _Column]:
    display = func.coalesce(ScimResource.display_name, Person.display_name)
    return {
        "id": _Column(Person.id, "int"),
        "username": _Column(Person.username, "ci"),
        "externalid": _Column(ScimResource.external_id, "cs"),
        "emails": _Column(Person.email, "ci"),
        "emails.value": _Column(Person.email, "ci"),
        "displayname": _Column(display, "ci"),
        "active": _Column(Person.active, "bool"),
        "name.givenname": _Column(Person.given_name, "ci"),
        "name.familyname": _Column(Person.family_name, "ci"),
        "title": _Column(Person.title, "ci"),
    }


def _group_columns() -> dict[str, _Column]:
    return {
        "id": _Column(Group.id, "int"),
        "displayname": _Column(Group.name, "ci"),
        "externalid": _Column(ScimResource.external_id, "cs"),
    }


def _comparison(col: _Column, op: CompareOperator, raw: Any, attr: str) -> ColumnElement[bool]:
    if col.kind == "bool":
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            raw = raw.lower() == "true"
        if not isinstance(raw, bool) or op not in (CompareOperator.eq, CompareOperator.ne):
            raise ScimInvalid(f"{attr} compares only with eq/ne true or false", scim_type="invalidFilter")
        result: ColumnElement[bool] = col.expr.is_(raw) if op == CompareOperator.eq else col.expr.is_not(raw)
        return result
    if col.kind == "int":
        value = str(raw)
        if not value.isdigit() or op not in (CompareOperator.eq, CompareOperator.ne):
            return false() if op == CompareOperator.eq else true()
        by_id: ColumnElement[bool] = col.expr == int(value) if op == CompareOperator.eq else col.expr != int(value)
        return by_id
    if raw is None or isinstance(raw, bool | dict | list):
        raise ScimInvalid(f"{attr}: compare with a string", scim_type="invalidFilter")
    value = str(raw)
    expr: Any = col.expr
    if col.kind == "ci":
        expr, value = func.lower(expr), value.lower()
    if op == CompareOperator.eq:
        return expr == value  # type: ignore[no-any-return]
    if op == CompareOperator.ne:
        return or_(expr != value, expr.is_(None))
    if op == CompareOperator.co:
        return expr.like(f"%{_like_escape(value)}%", escape="\\")  # type: ignore[no-any-return]
    if op == CompareOperator.sw:
        return expr.like(f"{_like_escape(value)}%", escape="\\")  # type: ignore[no-any-return]
    if op == CompareOperator.ew:
        return expr.like(f"%{_like_escape(value)}", escape="\\")  # type: ignore[no-any-return]
    ordering = {CompareOperator.gt: expr > value, CompareOperator.ge: expr >= value,
                CompareOperator.lt: expr < value, CompareOperator.le: expr <= value}
    ordered: ColumnElement[bool] = ordering[op]
    return ordered


def _to_sql(node: FilterNode, columns: dict[str, _Column], kind: str) -> ColumnElement[bool]:
    if isinstance(node, LogicalExpr):
        parts = [_to_sql(t, columns, kind) for t in node.terms]
        return and_(*parts) if node.op == LogicalOperator.and_ else or_(*parts)
    if isinstance(node, Not):
        return not_(_to_sql(node.expr, columns, kind))
    if isinstance(node, ValuePath):
        # emails[value eq "x"] and members[value eq "1"]: only the value sub-attribute is searchable.
        inner = node.val_filter
        if isinstance(inner, Comparison | Present) and inner.attr_path.attr.lower() == "value":
            rewritten: FilterNode
            sub = AttrPath(node.attr_path.attr, "value")
            rewritten = (Comparison(sub, inner.op, inner.value) if isinstance(inner, Comparison) else Present(sub))
            return _to_sql(rewritten, columns, kind)
        raise ScimInvalid(f"filter on {node} is not supported", scim_type="invalidFilter")
    if isinstance(node, Present | Comparison):
        key = _attr_key(node.attr_path)
        if kind == GROUP and key in ("members", "members.value"):
            if isinstance(node, Present):
                return exists().where(DirGroupMember.group_id == Group.id)
            value = str(node.value)
            if node.op != CompareOperator.eq or not value.isdigit():
                raise ScimInvalid("members.value supports only eq with a user id", scim_type="invalidFilter")
            return exists().where(DirGroupMember.group_id == Group.id, DirGroupMember.person_id == int(value))
        col = columns.get(key)
        if col is None:
            raise ScimInvalid(f"filtering on {node.attr_path} is not supported; use one of "
                              + ", ".join(sorted(columns)), scim_type="invalidFilter")
        if isinstance(node, Present):
            if col.kind in ("ci", "cs"):
                return and_(col.expr.is_not(None), col.expr != "")
            return col.expr.is_not(None)  # type: ignore[no-any-return]
        return _comparison(col, node.op, node.value, str(node.attr_path))
    raise ScimInvalid(f"unsupported filter expression {node}", scim_type="invalidFilter")


def _page(session: Session, stmt: Select[Any, Any], query: ListQuery, order: list[Any]) -> tuple[int, list[Any]]:
    total = int(session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one())
    count = max(0, min(query.count, MAX_RESULTS))
    start = max(1, query.start_index)
    rows = session.execute(stmt.order_by(*order).offset(start - 1).limit(count)).all() if count else []
    return total, list(rows)


_USER_SORT = {"username": Person.username, "displayname": Person.display_name, "id": Person.id,
              "name.familyname": Person.family_key, "name.givenname": Person.given_key,
              "meta.created": Person.created_at, "meta.lastmodified": Person.updated_at,
              "externalid": ScimResource.external_id, "emails": Person.email, "emails.value": Person.email}
_GROUP_SORT = {"displayname": Group.name, "id": Group.id, "externalid": ScimResource.external_id,
               "meta.created": ScimResource.created_at, "meta.lastmodified": ScimResource.updated_at}


def _order(sort_map: dict[str, Any], query: ListQuery, tiebreak: Any) -> list[Any]:
    if not query.sort_by:
        return [tiebreak]
    key = query.sort_by.lower()
    if ":" in key:
        key = key.rsplit(":", 1)[1]
    col = sort_map.get(key)
    if col is None:
        raise ScimInvalid(f"sorting by {query.sort_by} is not supported; use one of {', '.join(sorted(sort_map))}",
                          scim_type="invalidValue")
    return [col.desc() if query.descending else col.asc(), tiebreak]


def list_users(*, session: Session, query: ListQuery, base: str) -> ListResult:
    """Every person in the directory that SCIM has not deleted, so an IdP can match existing accounts."""
    stmt = select(Person, ScimResource).outerjoin(ScimResource, ScimResource.person_id == Person.id).where(
        ScimResource.deleted_at.is_(None))
    if query.filter is not None:
        stmt = stmt.where(_to_sql(query.filter, _user_columns(), USER))
    total, rows = _page(session, stmt, query, _order(_USER_SORT, query, Person.id))
    return ListResult(total, max(1, query.start_index), [render_user(session, p, r, base) for p, r in rows])


def list_groups(*, session: Session, query: ListQuery, base: str) -> ListResult:
    """Groups provisioned over SCIM (groups and teams made in carerelay are not the IdP's to manage)."""
    stmt = select(Group, ScimResource).join(ScimResource, ScimResource.group_id == Group.id).where(
        ScimResource.deleted_at.is_(None))
    if query.filter is not None:
        stmt = stmt.where(_to_sql(query.filter, _group_columns(), GROUP))
    total, rows = _page(session, stmt, query, _order(_GROUP_SORT, query, Group.id))
    return ListResult(total, max(1, query.start_index), [render_group(session, g, r, base) for g, r in rows])


def validate_user(payload: Any, context: Context) -> ScimUser:
    try:
        return ScimUser.model_validate(payload, scim_ctx=context, scim_policy=POLICY)
    except ValidationError as exc:
        raise scim_invalid_from(exc) from exc


def validate_group(payload: Any, context: Context) -> ScimGroup:
    try:
        group = ScimGroup.model_validate(payload, scim_ctx=context, scim_policy=POLICY)
    except ValidationError as exc:
        raise scim_invalid_from(exc) from exc
    for member in group.members or []:
        if not isinstance(member, GroupMember) or not member.value:
            raise ScimInvalid("each member needs a value (the user's id)", field="members")
    return group


def validate_patch(payload: Any, model: type[Any]) -> PatchOp[Any]:
    try:
        patch: PatchOp[Any] = PatchOp[model].model_validate(  # type: ignore[valid-type]
            payload, scim_ctx=Context.RESOURCE_PATCH_REQUEST, scim_policy=POLICY)
    except ValidationError as exc:
        raise scim_invalid_from(exc) from exc
    return patch


"""Connectors: configure, map assignments, list runs, hand out what was sent. Every change audited.

Connectors are integration settings, kept by integration and system administrators (and the CLI).
The configuration is checked against the target plug-in before it is stored: the person key must be
one the target accepts, the transport one it can use, options and trigger must validate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.db import flush_or_conflict
from carerelay.core.errors import Conflict, Forbidden, Invalid, NotFound
from carerelay.directory import service as directory
from carerelay.directory.models import Department, Role, Site
from carerelay.integrations.exports.base import Target
from carerelay.integrations.exports.config import (
    CHANGE_TRIGGERS,
    FILE_TRANSPORTS,
    PERSON_KEYS,
    FolderTransport,
    HttpTransport,
    SftpTransport,
    Transport,
    Trigger,
)
from carerelay.integrations.exports.models import ACTIVE, Connector, ExportRun
from carerelay.integrations.exports.source import validation_text
from carerelay.integrations.exports.targets import TARGETS, get_target
from carerelay.integrations.exports.triggers import next_due
from carerelay.scheduling import service as scheduling
from carerelay.scheduling.models import Assignment
from carerelay.scheduling.timeline import zone

TRIGGERS: TypeAdapter[Trigger] = TypeAdapter(Trigger)
TRANSPORTS: TypeAdapter[SftpTransport | FolderTransport | HttpTransport] = TypeAdapter(Transport)
EDITABLE = ("enabled", "person_key", "mapping_key", "departments", "timezone", "trigger", "content", "transport",
            "file_name", "options", "notify", "max_attempts")


def check_export_admin(actor: Actor) -> None:
    if not actor.has_any(Role.SYSTEM_ADMIN.value, Role.INTEGRATION_ADMIN.value, "system"):
        raise Forbidden("only system or integration administrators manage connectors")


@dataclass(frozen=True)
class Parsed:
    """A connector's configuration as typed objects (stored as JSON)."""

    target: Target
    trigger: Trigger
    transport: SftpTransport | FolderTransport | HttpTransport
    options: Any


def _validated(adapter: TypeAdapter[Any], value: Any, field: str) -> Any:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise Invalid(f"{field}: {validation_text(exc)}", field=field) from None


def parse(connector: Connector) -> Parsed:
    target = get_target(connector.target)
    return Parsed(target=target, trigger=TRIGGERS.validate_python(connector.trigger),
                  transport=TRANSPORTS.validate_python(connector.transport),
                  options=target.options_model.model_validate(connector.options or {}))


def _check_config(session: Session, values: dict[str, Any]) -> dict[str, Any]:
    """Validate a whole configuration; returns the column values to store."""
    target = get_target(values["target"])
    person_key = values.get("person_key", target.default_person_key)
    if person_key is not None and person_key not in PERSON_KEYS:
        raise Invalid(f"{person_key!r} is not a directory id field ({', '.join(PERSON_KEYS)})", field="person_key")
    if target.person_keys is not None and person_key not in target.person_keys:
        raise Invalid(f"{target.label} matches people on {', '.join(target.person_keys)}", field="person_key")
    if target.needs_person and person_key is None and target.direction != "inbound":
        raise Invalid(f"{target.label} needs a person_key", field="person_key")
    if target.direction == "inbound" and person_key is None:
        raise Invalid("the import matches rows on a person_key", field="person_key")
    trigger = _validated(TRIGGERS, values.get("trigger") or target.default_trigger, "trigger")
    transport = _validated(TRANSPORTS, values.get("transport"), "transport")
    wants_file = target.direction in ("file", "inbound")
    if wants_file != (transport.kind in FILE_TRANSPORTS):
        allowed = " or ".join(FILE_TRANSPORTS) if wants_file else "http"
        raise Invalid(f"{target.label} needs an {allowed} transport", field="transport.kind")
    if target.direction == "inbound" and trigger.kind in CHANGE_TRIGGERS:
        raise Invalid("an import runs on a time trigger (daily, interval)", field="trigger.kind")
    options = _validated(TypeAdapter(target.options_model), values.get("options") or {}, "options")
    departments = values.get("departments")
    department_ids = None
    if departments:
        department_ids = []
        for code in departments:
            dept = session.execute(select(Department).where(Department.code == code)).scalar_one_or_none()
            if dept is None:
                raise Invalid(f"no department {code!r}", field="departments")
            department_ids.append(dept.id)
    tz_name = values.get("timezone") or _default_zone(session, department_ids)
    try:
        zone(tz_name)
    except (KeyError, ValueError):
        raise Invalid(f"{tz_name!r} is not an IANA time zone", field="timezone") from None
    content = values.get("content") or target.default_content
    if content not in ("full", "delta"):
        raise Invalid("content must be full or delta", field="content")
    max_attempts = int(values.get("max_attempts") or 5)
    if not 1 <= max_attempts <= 20:
        raise Invalid("max_attempts must be between 1 and 20", field="max_attempts")
    notify = [str(a).strip() for a in values.get("notify") or []]
    for address in notify:
        if "@" not in address or " " in address:
            raise Invalid(f"{address!r} is not an e-mail address", field="notify")
    return {
        "target": target.name, "enabled": bool(values.get("enabled", True)), "person_key": person_key,
        "mapping_key": values.get("mapping_key") or target.name, "department_ids": department_ids,
        "timezone": tz_name, "trigger": trigger.model_dump(mode="json"), "content": content,
        "transport": transport.model_dump(mode="json"), "file_name": values.get("file_name"),
        "options": options.model_dump(mode="json"), "notify": notify, "max_attempts": max_attempts,
    }


def _default_zone(session: Session, department_ids: list[int] | None) -> str:
    if department_ids:
        dept = session.get(Department, department_ids[0])
        assert dept is not None
        return dept.site.timezone
    site = session.execute(select(Site).order_by(Site.id).limit(1)).scalar_one_or_none()
    return site.timezone if site is not None else "UTC"


def _schedule_next(connector: Connector, trigger: Trigger, now: Any) -> None:
    connector.next_due_at = next_due(trigger, after=now, timezone=connector.timezone)


def create_connector(*, session: Session, clock: Clock, actor: Actor, values: dict[str, Any]) -> Connector:
    check_export_admin(actor)
    name = str(values.get("name") or "").strip()
    if not name:
        raise Invalid("a connector needs a name", field="name")
    if session.execute(select(Connector.id).where(Connector.name == name)).first():
        raise Conflict(f"a connector named {name!r} exists", field="name")
    checked = _check_config(session, values)
    now = clock.now()
    connector = Connector(name=name, **checked, created_at=now, updated_at=now)
    _schedule_next(connector, TRIGGERS.validate_python(checked["trigger"]), now)
    session.add(connector)
    flush_or_conflict(session, f"a connector named {name!r} exists")
    audit.record(session=session, clock=clock, actor=actor, action="exports.create_connector",
                 object_type="connector", object_id=connector.id, detail={"name": name, **checked})
    return connector


def update_connector(
    *, session: Session, clock: Clock, actor: Actor, connector_id: int, changes: dict[str, Any]
) -> Connector:
    check_export_admin(actor)
    connector = get_connector(session=session, connector_id=connector_id)
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise Invalid(f"cannot change {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    current = _as_values(session, connector)
    before = {k: current.get(k) for k in changes}
    checked = _check_config(session, {**current, **changes})
    for key, value in checked.items():
        setattr(connector, key, value)
    now = clock.now()
    connector.updated_at = now
    if "trigger" in changes or "timezone" in changes:
        _schedule_next(connector, TRIGGERS.validate_python(checked["trigger"]), now)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="exports.update_connector",
                 object_type="connector", object_id=connector_id, detail={"before": before, "after": changes})
    return connector


def _as_values(session: Session, connector: Connector) -> dict[str, Any]:
    codes = department_codes(session, connector)
    return {"target": connector.target, "enabled": connector.enabled, "person_key": connector.person_key,
            "mapping_key": connector.mapping_key, "departments": codes, "timezone": connector.timezone,
            "trigger": connector.trigger, "content": connector.content, "transport": connector.transport,
            "file_name": connector.file_name, "options": connector.options, "notify": connector.notify,
            "max_attempts": connector.max_attempts}


def department_codes(session: Session, connector: Connector) -> list[str] | None:
    if not connector.department_ids:
        return None
    return [d.code for d in session.execute(
        select(Department).where(Department.id.in_(connector.department_ids)).order_by(Department.code)).scalars()]


def get_connector(*, session: Session, connector_id: int) -> Connector:
    connector = session.get(Connector, connector_id)
    if connector is None:
        raise NotFound(f"no connector {connector_id}")
    return connector


def find_connector(*, session: Session, ref: str) -> Connector:
    """By id or by name (the CLI takes either)."""
    if ref.isdigit():
        return get_connector(session=session, connector_id=int(ref))
    found = session.execute(select(Connector).where(Connector.name == ref)).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no connector {ref!r}")
    return found


def list_connectors(*, session: Session) -> list[Connector]:
    return list(session.execute(select(Connector).order_by(Connector.id)).scalars())


def map_assignment(
    *, session: Session, clock: Clock, actor: Actor, connector_id: int, assignment_id: int,
    fields: dict[str, Any] | None,
) -> Assignment:
    """Set this connector's fields on an assignment (checked by the target), or remove them with None."""
    check_export_admin(actor)
    connector = get_connector(session=session, connector_id=connector_id)
    target = get_target(connector.target)
    if target.mapping_model is None:
        raise Invalid(f"{target.label} sends every assignment; it has no assignment mapping", field="fields")
    if fields is not None:
        try:
            fields = target.mapping_model.model_validate(fields).model_dump(mode="json", exclude_defaults=False)
        except ValidationError as exc:
            raise Invalid(validation_text(exc), field="fields") from None
    return scheduling.set_assignment_mapping(session=session, clock=clock, actor=actor, assignment_id=assignment_id,
                                             key=connector.mapping_key, fields=fields)


def list_runs(*, session: Session, connector_id: int, limit: int = 50) -> list[ExportRun]:
    get_connector(session=session, connector_id=connector_id)
    return list(session.execute(select(ExportRun).where(ExportRun.connector_id == connector_id)
                                .order_by(ExportRun.id.desc()).limit(limit)).scalars())


def get_run(*, session: Session, run_id: int) -> ExportRun:
    run = session.get(ExportRun, run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    return run


def active_run(session: Session, connector_id: int) -> ExportRun | None:
    return session.execute(select(ExportRun).where(ExportRun.connector_id == connector_id,
                                                   ExportRun.status.in_(ACTIVE))
                           .order_by(ExportRun.id).limit(1)).scalar_one_or_none()


def access_payload(*, session: Session, clock: Clock, actor: Actor, run_id: int) -> ExportRun:
    """Exactly what was (or, for a dry run, would be) sent. Audited: files name people and their ids."""
    check_export_admin(actor)
    run = get_run(session=session, run_id=run_id)
    if run.payload is None:
        raise NotFound(f"run {run_id} has no payload (it failed before one was built)")
    audit.record(session=session, clock=clock, actor=actor, action="exports.download_payload",
                 object_type="export_run", object_id=run_id,
                 detail={"connector_id": run.connector_id, "sha256": run.payload_sha256})
    return run


def admin_addresses(session: Session, connector: Connector) -> list[str]:
    """The connector's own list, or else every active integration administrator's e-mail."""
    if connector.notify:
        return list(connector.notify)
    people = directory.search_people(session=session, query=directory.PersonQuery(role=Role.INTEGRATION_ADMIN.value),
                                     limit=50)
    return [p["email"] for p in people if p.get("email")]


def target_catalog() -> list[Target]:
    return list(TARGETS.values())

"""Managing escalation policies (runs are the engine's).

A policy is chosen by its scope (alert kind, department, priority), so two active policies with the
same scope would leave the choice to chance: creating or re-scoping one onto a taken scope is
refused, naming the policy to edit instead. Editing or deactivating a policy never touches runs in
progress: each run keeps the snapshot it started with.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.db import flush_or_conflict
from carerelay.core.errors import Conflict, Invalid, NotFound
from carerelay.directory.models import Department
from carerelay.escalation.engine import TARGET
from carerelay.escalation.models import EscalationPolicy, EscalationRun
from carerelay.routing.resolver import check_address, resolve

SCOPE = ("alert_kind", "department_id", "priority")
EDITABLE = frozenset({"name", *SCOPE, "steps", "repeat", "fallback_address", "active"})
REQUIRED = frozenset({"name", "steps", "repeat", "active"})


def _check_address(session: Session, clock: Clock, address: str, where: str) -> None:
    """Refuse what could never resolve (an unknown role or group) when it is typed, not at 3 a.m."""
    try:
        check_address(address)
        resolve(session, address, clock.now())
    except Invalid as exc:
        raise Invalid(f"{where}: {exc.message}", field=exc.field) from None


def _check(session: Session, clock: Clock, data: dict[str, Any]) -> None:
    for n, step in enumerate(data.get("steps") or []):
        if step["address"] != TARGET:
            _check_address(session, clock, step["address"], f"step {n + 1}")
    if data.get("fallback_address"):
        _check_address(session, clock, data["fallback_address"], "fallback_address")
    if data.get("department_id") is not None and session.get(Department, data["department_id"]) is None:
        raise Invalid(f"no department {data['department_id']}", field="department_id")


def _check_scope_free(session: Session, policy: EscalationPolicy) -> None:
    if not policy.active:
        return
    query = select(EscalationPolicy).where(EscalationPolicy.active.is_(True), EscalationPolicy.id != policy.id)
    for column in SCOPE:
        value = getattr(policy, column)
        attribute = getattr(EscalationPolicy, column)
        query = query.where(attribute.is_(None) if value is None else attribute == value)
    taken = session.execute(query.limit(1)).scalar_one_or_none()
    if taken is not None:
        raise Conflict(f"policy {taken.name!r} (id {taken.id}) already covers this alert kind, department and "
                       f"priority; edit or deactivate it instead", field="alert_kind")


def _as_json(policy: EscalationPolicy) -> dict[str, Any]:
    return {"name": policy.name, "alert_kind": policy.alert_kind, "department_id": policy.department_id,
            "priority": policy.priority, "steps": list(policy.steps), "repeat": policy.repeat,
            "fallback_address": policy.fallback_address, "active": policy.active}


def create_policy(*, session: Session, clock: Clock, actor: Actor, data: dict[str, Any]) -> EscalationPolicy:
    _check(session, clock, data)
    policy = EscalationPolicy(**data, active=True)
    session.add(policy)
    flush_or_conflict(session, f"a policy named {data['name']!r} already exists")
    _check_scope_free(session, policy)
    audit.record(session=session, clock=clock, actor=actor, action="escalation.create_policy",
                 object_type="escalation_policy", object_id=policy.id, detail=data)
    return policy


def get_policy(*, session: Session, policy_id: int) -> EscalationPolicy:
    policy = session.get(EscalationPolicy, policy_id)
    if policy is None:
        raise NotFound(f"no escalation policy {policy_id}")
    return policy


def update_policy(
    *, session: Session, clock: Clock, actor: Actor, policy_id: int, changes: dict[str, Any]
) -> EscalationPolicy:
    """Change some fields (``active: false`` deactivates); runs already started keep their snapshot."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise Invalid(f"cannot change {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    cleared = sorted(k for k in REQUIRED & set(changes) if changes[k] is None)
    if cleared:
        raise Invalid(f"{cleared[0]} cannot be empty", field=cleared[0])
    policy = get_policy(session=session, policy_id=policy_id)
    _check(session, clock, changes)
    before = _as_json(policy)
    for key, value in changes.items():
        setattr(policy, key, value)
    flush_or_conflict(session, f"a policy named {changes.get('name')!r} already exists")
    _check_scope_free(session, policy)
    after = _as_json(policy)
    audit.record(session=session, clock=clock, actor=actor, action="escalation.update_policy",
                 object_type="escalation_policy", object_id=policy.id,
                 detail={"before": {k: before[k] for k in changes}, "after": {k: after[k] for k in changes}})
    return policy


def find_policy_by_name(*, session: Session, name: str) -> EscalationPolicy | None:
    return session.execute(select(EscalationPolicy).where(EscalationPolicy.name == name)).scalar_one_or_none()


def list_policies(*, session: Session, include_inactive: bool = True) -> list[EscalationPolicy]:
    query = select(EscalationPolicy).order_by(EscalationPolicy.name)
    if not include_inactive:
        query = query.where(EscalationPolicy.active.is_(True))
    return list(session.execute(query).scalars())


def run_for_alert(*, session: Session, alert_id: int) -> EscalationRun | None:
    """Where an alert's escalation stands (for a screen showing it; the engine locks its own)."""
    return session.execute(select(EscalationRun).where(EscalationRun.alert_id == alert_id)).scalar_one_or_none()

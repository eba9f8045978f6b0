"""Managing routing rules; resolving addresses for a preview ("who would this reach now?")."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import Invalid, NotFound
from carerelay.directory.models import Department
from carerelay.routing.models import RoutingRule
from carerelay.routing.resolver import Resolution, check_address, resolve


def create_rule(
    *, session: Session, clock: Clock, actor: Actor, data: dict[str, Any], person_id: int | None,
    department_id: int | None = None,
) -> RoutingRule:
    if data.get("forward_to"):
        check_address(data["forward_to"])
    if department_id is not None and session.get(Department, department_id) is None:
        raise Invalid(f"no department {department_id}", field="department_id")
    rule = RoutingRule(**data, person_id=person_id, department_id=department_id, active=True)
    session.add(rule)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="routing.create_rule", object_type="routing_rule",
                 object_id=rule.id, detail={**data, "person_id": person_id, "department_id": department_id})
    return rule


def my_rules(*, session: Session, person_id: int) -> list[RoutingRule]:
    return list(session.execute(select(RoutingRule).where(RoutingRule.person_id == person_id,
                                                          RoutingRule.active.is_(True))
                                .order_by(RoutingRule.rank, RoutingRule.id)).scalars())


def deactivate_rule(*, session: Session, clock: Clock, actor: Actor, rule_id: int) -> RoutingRule:
    rule = session.get(RoutingRule, rule_id)
    if rule is None or (rule.person_id != actor.person_id and not actor.has_any("system_admin")):
        raise NotFound(f"no rule {rule_id}")
    rule.active = False
    audit.record(session=session, clock=clock, actor=actor, action="routing.deactivate_rule",
                 object_type="routing_rule", object_id=rule_id)
    return rule


def preview(*, session: Session, clock: Clock, address: str) -> Resolution:
    return resolve(session, address, clock.now())


def department_rules(*, session: Session, department_id: int | None = None) -> list[RoutingRule]:
    """Departments' default rules (what applies to a person without a matching rule of their own)."""
    query = select(RoutingRule).where(RoutingRule.department_id.is_not(None), RoutingRule.active.is_(True))
    if department_id is not None:
        query = query.where(RoutingRule.department_id == department_id)
    return list(session.execute(query.order_by(RoutingRule.department_id, RoutingRule.rank, RoutingRule.id)).scalars())

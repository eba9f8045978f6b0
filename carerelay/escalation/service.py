"""Managing escalation policies (runs are the engine's)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.db import flush_or_conflict
from carerelay.escalation.engine import TARGET
from carerelay.escalation.models import EscalationPolicy, EscalationRun
from carerelay.routing.resolver import check_address


def create_policy(*, session: Session, clock: Clock, actor: Actor, data: dict[str, Any]) -> EscalationPolicy:
    for n, step in enumerate(data["steps"]):
        if step["address"] != TARGET:
            try:
                check_address(step["address"])
            except Exception as exc:
                raise type(exc)(f"step {n + 1}: {exc}") from None
    if data.get("fallback_address"):
        check_address(data["fallback_address"])
    policy = EscalationPolicy(**data, active=True)
    session.add(policy)
    flush_or_conflict(session, f"a policy named {data['name']!r} already exists")
    audit.record(session=session, clock=clock, actor=actor, action="escalation.create_policy",
                 object_type="escalation_policy", object_id=policy.id, detail=data)
    return policy


def list_policies(*, session: Session) -> list[EscalationPolicy]:
    return list(session.execute(select(EscalationPolicy).order_by(EscalationPolicy.name)).scalars())


def run_for_alert(*, session: Session, alert_id: int) -> EscalationRun | None:
    """Where an alert's escalation stands (for a screen showing it; the engine locks its own)."""
    return session.execute(select(EscalationRun).where(EscalationRun.alert_id == alert_id)).scalar_one_or_none()

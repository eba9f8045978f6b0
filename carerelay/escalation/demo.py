"""The demo hospital's escalation policies: who is reached next when nobody acknowledges.

Loaded through the policy service (validated and audited like an administrator's work), after the
schedules so their role addresses resolve. Found by name first: loading again changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.directory.models import Department
from carerelay.escalation import service

OPERATORS = "group:OPERATORS"

POLICIES: list[dict[str, Any]] = [
    # A page or needs-ack message to "Cardiology On Call" reaches first call; unanswered after 5
    # minutes, second call; 5 minutes later the operators, who phone round.
    {"name": "Cardiology on call", "alert_kind": None, "department": "CARD", "priority": None,
     "steps": [{"address": "target:", "wait_minutes": 5},
               {"address": "role:Cardiology On Call#2", "wait_minutes": 5}],
     "repeat": 0, "fallback_address": OPERATORS},
    # Hospitalists: whoever was addressed, the hospitalist on now (after a shift change: the new
    # one), then every hospitalist.
    {"name": "Hospitalist on call", "alert_kind": None, "department": "HOSP", "priority": None,
     "steps": [{"address": "target:", "wait_minutes": 5}, {"address": "role:Hospitalist", "wait_minutes": 5},
               {"address": "group:HOSP-PHYS", "wait_minutes": 10}],
     "repeat": 0, "fallback_address": OPERATORS},
    # Critical lab results (scenario 1): the ordering provider, then the covering cardiologist
    # (cardiology on call, call order 2), then the operators.
    {"name": "Critical lab results", "alert_kind": "critical_result", "department": None, "priority": None,
     "steps": [{"address": "target:", "wait_minutes": 5},
               {"address": "role:Cardiology On Call#2", "wait_minutes": 5}],
     "repeat": 0, "fallback_address": OPERATORS},
    # Everything else: whoever was addressed, then the operators (the platform's default, written
    # down so it can be seen and edited).
    {"name": "Everything else: then the operators", "alert_kind": None, "department": None, "priority": None,
     "steps": [{"address": "target:", "wait_minutes": 5}], "repeat": 0, "fallback_address": OPERATORS},
]


def load_demo_policies(*, session: Session, clock: Clock, actor: Actor, count: Callable[[str], None]) -> None:
    depts = {code: dept_id for code, dept_id in session.execute(select(Department.code, Department.id))}
    for spec in POLICIES:
        if service.find_policy_by_name(session=session, name=spec["name"]) is not None:
            continue
        data = {k: v for k, v in spec.items() if k != "department"}
        data["department_id"] = depts[spec["department"]] if spec["department"] else None
        service.create_policy(session=session, clock=clock, actor=actor, data=data)
        count("escalation_policies")

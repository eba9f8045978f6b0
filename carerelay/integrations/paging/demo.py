"""The demo hospital's nurse call, telemetry and paging set-up, matching ../shared/samples/wctp.

Loaded through the paging service like an administrator would, and idempotent (found by natural key).
Beds, charge nurses and techs are `location:` addresses, so every call and every escalation step
reaches whoever the unit's staff assignments name at that moment (the charge nurse's board).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.integrations.paging import service as paging
from carerelay.integrations.paging.models import PagingRecipient, PagingRule

DEMO_SECURITY_CODE = "demo-secret"

SENDERS = [
    # sender id, label, channels
    ("nursecall-4w", "4 West nurse call server", ["wctp", "tap"]),
    ("telemetry-central", "Telemetry central station", ["wctp"]),
]

RECIPIENTS: list[dict[str, Any]] = [
    {"recipient_id": "4W-412-B", "unit": "4W", "room": "412", "bed": "B", "label": "4 West room 412 bed B"},
    {"recipient_id": "ICU-2-A", "unit": "ICU", "room": "2", "bed": "A", "label": "ICU bed 2-A"},
    {"recipient_id": "4W-CHARGE", "address": "location:4W/charge_nurse", "label": "4 West charge nurse phone"},
    {"recipient_id": "CODE-BLUE", "address": "team:CODE-BLUE", "label": "Code Blue team"},
]


def _to_charge(first_wait: float) -> dict[str, Any]:
    return {"steps": [{"address": "target:", "wait_minutes": first_wait},
                      {"address": "location:{unit}/charge_nurse", "wait_minutes": first_wait}],
            "repeat": 1, "fallback": "group:OPERATORS"}


RULES: list[dict[str, Any]] = [
    {"name": "Code blue", "position": 10, "text_pattern": r"code\s*blue", "alert_kind": "code_blue",
     "priority": "critical", "tone": "code", "target": "team:CODE-BLUE", "choices": ["Accept", "Call back"],
     "escalation": {"steps": [{"address": "target:", "wait_minutes": 1}], "repeat": 3,
                    "fallback": "group:OPERATORS"}},
    {"name": "Lethal rhythm", "position": 20, "sender_id": "telemetry-central",
     "text_pattern": r"v-?tach|v-?fib|asystole", "alert_kind": "telemetry", "priority": "critical", "tone": "alarm",
     "target": "all:location:{unit}/{room}/{bed}/nurse|location:{unit}/charge_nurse",
     "choices": ["Accept", "Reject", "Call back"],
     "escalation": {"steps": [{"address": "target:", "wait_minutes": 1},
                              {"address": "group:{unit}-NURSES", "wait_minutes": 2}],
                    "repeat": 1, "fallback": "team:RAPID-RESPONSE"}},
    {"name": "Telemetry", "position": 30, "sender_id": "telemetry-central", "alert_kind": "telemetry",
     "tone": "telemetry", "escalation": _to_charge(3)},
    {"name": "Water request", "position": 40, "text_pattern": r"water|ice chips|drink", "alert_kind": "patient_request",
     "priority": "routine", "target": "location:{unit}/{room}/{bed}/tech", "escalation": {
         "steps": [{"address": "target:", "wait_minutes": 10},
                   {"address": "location:{unit}/charge_nurse", "wait_minutes": 10}],
         "repeat": 1, "fallback": "group:OPERATORS"}},
    {"name": "Bed exit", "position": 50, "text_pattern": r"bed exit|fall", "alert_kind": "bed_exit", "priority": "stat",
     "tone": "urgent", "escalation": _to_charge(2)},
    {"name": "Nurse call", "position": 60, "sender_id": "nursecall-4w", "alert_kind": "nurse_call",
     "tone": "nurse-call", "escalation": _to_charge(3)},
]


def load_demo_paging(*, session: Session, clock: Clock, actor: Actor, count: Callable[[str], None]) -> None:
    for sender_id, label, channels in SENDERS:
        if paging.find_sender(session=session, sender_id=sender_id) is None:
            paging.create_sender(session=session, clock=clock, actor=actor, sender_id=sender_id,
                                 security_code=DEMO_SECURITY_CODE, channels=channels, label=label,
                                 timezone="America/Chicago")
            count("paging_senders")
    for recipient in RECIPIENTS:
        key = recipient["recipient_id"].lower()
        if session.execute(select(PagingRecipient.id).where(PagingRecipient.recipient_key == key)).first() is None:
            paging.create_recipient(session=session, clock=clock, actor=actor, **recipient)
            count("paging_recipients")
    for rule in RULES:
        if session.execute(select(PagingRule.id).where(PagingRule.name == rule["name"])).first() is None:
            values = dict(rule)
            paging.create_rule(session=session, clock=clock, actor=actor, name=values.pop("name"),
                               alert_kind=values.pop("alert_kind"), **values)
            count("paging_rules")

"""The demo hospital's connectors: a few configured the way a hospital would, all disabled.

They point at a local folder (``var/exports``) or at hosts that do not exist, so nothing leaves the
machine; an administrator sees them in ``carerelay connector list``, dry-runs them, and enables a
folder one to watch files appear. Their assignment mappings use their own keys (``demo-…``) so they
never mix with connectors an administrator adds. Found by name first: loading again changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.integrations.exports import service
from carerelay.integrations.exports.models import Connector
from carerelay.scheduling import service as scheduling

CARD = ("CARD-CALL1-DAY", "CARD-CALL2-DAY", "CARD-CALL1-NIGHT", "CARD-CALL2-NIGHT")
ADMINS = ["interfaces@demo-health.example"]

CONNECTORS: list[tuple[dict[str, Any], dict[str, dict[str, Any]]]] = [
    ({"name": "Epic On Call Finder (demo folder)", "target": "epic_on_call_finder", "mapping_key": "demo-epic",
      "departments": ["CARD", "NEURO"], "trigger": {"kind": "interval", "minutes": 5},
      "transport": {"kind": "folder", "path": "var/exports/epic"}, "file_name": "oncall.csv"},
     {**{code: {"team_id": "CARD-ONCALL", "role": "Cardiologist", "note_prefix": "carerelay"} for code in CARD},
      "NEURO-CALL": {"team_id": "NEURO-ONCALL", "role": "Neurologist"}}),
    ({"name": "Schedule backup (demo folder)", "target": "schedule_backup",
      "trigger": {"kind": "interval", "minutes": 10}, "options": {"days": 3, "format": "xlsx"},
      "transport": {"kind": "folder", "path": "var/exports/backup"}}, {}),
    ({"name": "Kronos Workforce Dimensions", "target": "kronos_wfd", "mapping_key": "demo-kronos",
      "departments": ["CARD"], "content": "delta",
      "trigger": {"kind": "pay_period", "anchor": "2026-11-01", "length_days": 14, "at": "01:00"},
      "options": {"include": {"non_exempt": ["shift", "call"], "exempt": ["call"]}},
      "transport": {"kind": "sftp", "host": "kronos-sftp.demo-health.example", "username": "carerelay",
                    "path": "/inbound/schedules", "key_file": "/etc/carerelay/kronos_ed25519",
                    "known_hosts": "/etc/carerelay/known_hosts"}},
     {code: {"segment_type": "Required", "comment": "cardiology call", "labor_categories": ["Cardiology"]}
      for code in CARD}),
    ({"name": "Outlook calendars", "target": "outlook", "mapping_key": "demo-outlook", "departments": ["CARD"],
      "transport": {"kind": "http", "base_url": "https://graph.microsoft.com/v1.0",
                    "token_url": "https://login.microsoftonline.com/demo-health.example/oauth2/v2.0/token",
                    "client_id": "00000000-0000-0000-0000-000000000000", "secret_env": "CARERELAY_GRAPH_SECRET"}},
     {code: {"include_schedule_notes": True} for code in CARD}),
]


def load_demo_connectors(*, session: Session, clock: Clock, actor: Actor, count: Callable[[str], None]) -> None:
    for values, mappings in CONNECTORS:
        if session.execute(select(Connector.id).where(Connector.name == values["name"])).first():
            continue
        connector = service.create_connector(session=session, clock=clock, actor=actor,
                                             values={**values, "enabled": False, "notify": ADMINS})
        for code, fields in mappings.items():
            assignment = scheduling.find_assignment(session=session, code=code)
            if assignment is not None:
                service.map_assignment(session=session, clock=clock, actor=actor, connector_id=connector.id,
                                       assignment_id=assignment.id, fields=fields)
        count("connectors")

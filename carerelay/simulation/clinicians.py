"""The simulated people: what their devices receive, and how (and whether) they answer.

A device here stands where every node's WebSockets stand: at the hub, which hands each committed unit
of work's realtime events to the sockets of the people they are for (``realtime.committed_events`` in
an after-commit hook, as ``app.py`` wires the hub). What a device never received, its person never saw,
whatever the tables say — so the report's "reached nobody" and "lost message" come from here.

How people answer is seeded: each notified person answers after a delay drawn around the median for
the kind of alert (a lethal rhythm in seconds, a routine request in minutes), or — a share of the
time, ``no_answer_share`` — never, so escalation has to find someone else. Operators always answer:
they are the switchboard every chain ends at. A few nurse calls are rejected (the next step runs at
once); critical results are called back and the read-back recorded; some messages get a reply.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from random import Random
from typing import Any

from sqlalchemy.orm import Session

from carerelay.realtime import service as realtime

MEDIAN_SECONDS = {"critical_result": 150.0, "telemetry": 45.0, "code_blue": 30.0, "nurse_call": 90.0,
                  "bed_exit": 40.0, "patient_request": 240.0, "message": 180.0, "no_one_to_reach": 60.0}
DEFAULT_MEDIAN = 180.0
OPERATOR_MEDIAN = 60.0
SPREAD = 0.8
"""Sigma of the log-normal delay: most answers come near the median, a tail comes after the step's wait."""
SHORTEST, LONGEST = timedelta(seconds=8), timedelta(minutes=45)
REPLIES = ("Seen, will follow up.", "On my way.", "Thanks, I will call the family.", "thanks")


@dataclass(frozen=True)
class Behaviour:
    no_answer_share: float = 0.1
    reject_share: float = 0.05
    reply_share: float = 0.3
    seed: int = 1


@dataclass(frozen=True)
class Answer:
    """Something a person does at ``at``."""

    at: datetime
    person_id: int
    kind: str  # delivered | respond | ack_message | readback | read | reply
    alert_id: int | None = None
    message_id: int | None = None
    conversation_id: int | None = None
    choice: str = ""
    text: str = ""


@dataclass
class Devices:
    """Who received what: alert id → people, message id → people (from the events, never the tables)."""

    alerts: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    messages: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    inbox: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)

    def on_commit(self, session: Session) -> None:
        for person_id, _, kind, payload in realtime.committed_events(session):
            if kind == "alert.new":
                self.alerts[int(payload["id"])].add(person_id)
            elif kind == "message.new":
                self.messages[int(payload["id"])].add(person_id)
            else:
                continue
            self.inbox.append((person_id, kind, payload))

    def take(self) -> list[tuple[int, str, dict[str, Any]]]:
        taken, self.inbox = self.inbox, []
        return taken


class People:
    """Decides, for each thing a device shows, what its person does next."""

    def __init__(self, behaviour: Behaviour, operators: frozenset[int]) -> None:
        self.behaviour = behaviour
        self.operators = operators
        self.rng = Random(behaviour.seed * 7919 + 17)
        self.decided: set[tuple[int, int]] = set()

    def _delay(self, median: float) -> timedelta:
        seconds = math.exp(self.rng.gauss(math.log(median), SPREAD))
        return min(LONGEST, max(SHORTEST, timedelta(seconds=seconds)))

    def react(self, now: datetime, person_id: int, kind: str, payload: dict[str, Any]) -> list[Answer]:
        if kind == "alert.new":
            return self._alert(now, person_id, payload)
        return self._message(now, person_id, payload)

    def _alert(self, now: datetime, person_id: int, alert: dict[str, Any]) -> list[Answer]:
        alert_id = int(alert["id"])
        if (alert_id, person_id) in self.decided:
            return []  # reached again in a later round: they answer as they decided the first time
        self.decided.add((alert_id, person_id))
        out = [Answer(now + timedelta(seconds=self.rng.uniform(1, 8)), person_id, "delivered", alert_id)]
        operator = person_id in self.operators
        if not operator and self.rng.random() < self.behaviour.no_answer_share:
            return out
        kind = str(alert.get("kind"))
        at = now + self._delay(OPERATOR_MEDIAN if operator else MEDIAN_SECONDS.get(kind, DEFAULT_MEDIAN))
        if kind == "message":
            data = alert.get("data") or {}
            out.append(Answer(at, person_id, "ack_message", alert_id, message_id=int(data["message_id"])))
            return out
        choices = [str(c) for c in alert.get("choices") or []]
        if "Reject" in choices and not operator and self.rng.random() < self.behaviour.reject_share:
            choice = "Reject"
        elif kind == "critical_result" and "Call back" in choices:
            choice = "Call back" if self.rng.random() < 0.8 else "Accept"
        elif "Accept" in choices:
            choice = "Accept"
        else:
            choice = choices[0] if choices else ""
        out.append(Answer(at, person_id, "respond", alert_id, choice=choice))
        if kind == "critical_result" and choice != "Reject":
            out.append(Answer(at + self._delay(90.0), person_id, "readback", alert_id))
        return out

    def _message(self, now: datetime, person_id: int, message: dict[str, Any]) -> list[Answer]:
        if int(message["sender_id"]) == person_id:
            return []
        message_id, conversation_id = int(message["id"]), int(message["conversation_id"])
        read_at = now + self._delay(120.0)
        out = [Answer(read_at, person_id, "read", message_id=message_id, conversation_id=conversation_id)]
        replying = (not message["needs_ack"] and not message["silent"] and str(message["text"]) not in REPLIES
                    and self.rng.random() < self.behaviour.reply_share)
        if replying:
            out.append(Answer(read_at + self._delay(60.0), person_id, "reply", message_id=message_id,
                              conversation_id=conversation_id, text=self.rng.choice(REPLIES)))
        return out

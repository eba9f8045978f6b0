"""Which paging rules can send a call to an address that does not exist.

A rule's target and escalation are templates (``group:{unit}-NURSES``): saving one checks its form,
but the group a unit's calls go to may never have been made, or may be deleted later. Nothing would
say so until a bed call reached that step — then it falls back to the operators. The auditor runs
this check so an integration admin hears of it first.

Templates are filled from the beds a rule can be about: every bed whose recipient id
(``UNIT-ROOM-BED``) the rule's recipient pattern matches; a rule that names a sender and no pattern,
only the beds that sender has paged about. One bed per unit is enough, since addresses name units,
rooms and beds, not people. Templates using ``{address}``, ``{recipient}`` or ``{sender}`` depend on the
page and are left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.core.errors import Invalid
from carerelay.escalation.engine import TARGET
from carerelay.integrations.paging.models import PagingMessage, PagingRule
from carerelay.integrations.paging.service import fill_template
from carerelay.patients.models import Bed, Unit
from carerelay.routing.resolver import resolve

PAGE_PLACEHOLDERS = ("{address}", "{recipient}", "{sender}")


def filled_by_page(template: str) -> bool:
    """Whether only a page itself can fill the template (its target, recipient or sender)."""
    return any(p in template for p in PAGE_PLACEHOLDERS)


def for_bed(template: str, unit: str, room: str, bed: str) -> str:
    """The address a template names for a page about this bed (one not ``filled_by_page``)."""
    return fill_template(template, {"unit": unit, "room": room, "bed": bed})


@dataclass(frozen=True)
class RuleProblem:
    rule_id: int
    rule: str
    unit: str | None
    address: str
    error: str


@dataclass(frozen=True)
class _Bed:
    unit: str
    room: str
    bed: str

    @property
    def recipient_id(self) -> str:
        return f"{self.unit}-{self.room}-{self.bed}"


def templates(rule: PagingRule) -> list[str]:
    """The addresses a rule can send to: its target, each escalation step and the fallback."""
    plan = rule.escalation or {}
    steps = [str(step["address"]) for step in plan.get("steps", []) if step.get("address") != TARGET]
    return list(dict.fromkeys(a for a in (rule.target, *steps, plan.get("fallback")) if a))


def _beds(session: Session) -> list[_Bed]:
    rows = session.execute(select(Unit.code, Bed.room, Bed.bed).join(Bed, Bed.unit_id == Unit.id)
                           .order_by(Unit.code, Bed.room, Bed.bed)).all()
    return [_Bed(*row) for row in rows]


def _paged_about(session: Session, sender_id: str) -> set[str]:
    query = (select(PagingMessage.recipient_id).distinct()
             .where(PagingMessage.sender_id == sender_id, PagingMessage.recipient_id.is_not(None)))
    return {r for r in session.execute(query).scalars() if r}


def _one_bed_per_unit(session: Session, rule: PagingRule, beds: list[_Bed]) -> list[_Bed]:
    if rule.recipient_pattern is not None:
        pattern = re.compile(rule.recipient_pattern, re.IGNORECASE)
        chosen = [b for b in beds if pattern.search(b.recipient_id)]
    elif rule.sender_id is not None:
        paged = {r.upper() for r in _paged_about(session, rule.sender_id)}
        chosen = [b for b in beds if b.recipient_id.upper() in paged]
    else:
        chosen = beds
    first: dict[str, _Bed] = {}
    for bed in chosen:
        first.setdefault(bed.unit, bed)
    return list(first.values())


def unresolvable_addresses(*, session: Session, at: datetime) -> list[RuleProblem]:
    """Every (active rule, address) that names something that does not exist, with the resolver's words."""
    problems: dict[tuple[int, str], RuleProblem] = {}
    beds: list[_Bed] | None = None
    rules = session.execute(select(PagingRule).where(PagingRule.active.is_(True))
                            .order_by(PagingRule.position, PagingRule.id)).scalars()
    for rule in rules:
        about: list[_Bed] | None = None  # the beds this rule can be about, read once per rule
        for template in templates(rule):
            if filled_by_page(template):
                continue
            if "{" not in template:
                candidates: list[tuple[str | None, str]] = [(None, template)]
            else:
                if about is None:
                    beds = _beds(session) if beds is None else beds
                    about = _one_bed_per_unit(session, rule, beds)
                candidates = [(b.unit, for_bed(template, b.unit, b.room, b.bed)) for b in about]
            for unit, address in candidates:
                if (rule.id, address) in problems:
                    continue
                try:
                    resolve(session, address, at)
                except Invalid as exc:
                    problems[(rule.id, address)] = RuleProblem(rule.id, rule.name, unit, address, exc.message)
    return list(problems.values())

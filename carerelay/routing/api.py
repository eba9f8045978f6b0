"""Routing routes: my rules, department defaults, and who an address reaches now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from carerelay.auth.deps import ClockDep, DbSession, allow, signed_in
from carerelay.core.actor import Actor
from carerelay.directory.models import Role
from carerelay.routing import service
from carerelay.routing.schemas import DepartmentRuleIn, ResolutionOut, RuleIn, RuleOut

router = APIRouter(prefix="/api/routing", tags=["routing"])


@router.get("/rules", response_model=list[RuleOut])
def my_rules(session: DbSession, actor: Actor = signed_in()) -> list[RuleOut]:
    assert actor.person_id is not None
    return [RuleOut.model_validate(r) for r in service.my_rules(session=session, person_id=actor.person_id)]


@router.post("/rules", response_model=RuleOut, status_code=status.HTTP_201_CREATED)
def create_rule(body: RuleIn, session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> RuleOut:
    return RuleOut.model_validate(service.create_rule(session=session, clock=clock, actor=actor,
                                                      data=body.model_dump(), person_id=actor.person_id))


@router.delete("/rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
def deactivate_rule(rule_id: int, session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> Response:
    service.deactivate_rule(session=session, clock=clock, actor=actor, rule_id=rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/department-rules", response_model=RuleOut, status_code=status.HTTP_201_CREATED)
def create_department_rule(body: DepartmentRuleIn, session: DbSession, clock: ClockDep,
                           actor: Actor = allow(Role.SYSTEM_ADMIN, Role.INTEGRATION_ADMIN, Role.SCHEDULER)) -> RuleOut:
    data = body.model_dump(exclude={"department_id"})
    return RuleOut.model_validate(service.create_rule(session=session, clock=clock, actor=actor, data=data,
                                                      person_id=None, department_id=body.department_id))


@router.get("/resolve", response_model=ResolutionOut)
def resolve(session: DbSession, clock: ClockDep,
            address: Annotated[str, Query(min_length=3, max_length=200)], actor: Actor = signed_in()) -> ResolutionOut:
    resolution = service.preview(session=session, clock=clock, address=address)
    return ResolutionOut.model_validate(resolution.as_json())

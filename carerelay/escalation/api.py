"""Escalation policy routes for integration and system administrators."""

from __future__ import annotations

from fastapi import APIRouter, status

from carerelay.auth.deps import ClockDep, DbSession, allow, signed_in
from carerelay.core.actor import Actor
from carerelay.directory.models import Role
from carerelay.escalation import service
from carerelay.escalation.schemas import PolicyIn, PolicyOut

router = APIRouter(prefix="/api/escalation", tags=["escalation"])


@router.get("/policies", response_model=list[PolicyOut])
def list_policies(session: DbSession, actor: Actor = signed_in()) -> list[PolicyOut]:
    return [PolicyOut.model_validate(p) for p in service.list_policies(session=session)]


@router.post("/policies", response_model=PolicyOut, status_code=status.HTTP_201_CREATED)
def create_policy(body: PolicyIn, session: DbSession, clock: ClockDep,
                  actor: Actor = allow(Role.INTEGRATION_ADMIN, Role.SYSTEM_ADMIN)) -> PolicyOut:
    return PolicyOut.model_validate(service.create_policy(session=session, clock=clock, actor=actor,
                                                          data=body.model_dump()))

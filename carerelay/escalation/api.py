"""Escalation policy routes for integration and system administrators."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from carerelay.auth.deps import ClockDep, DbSession, allow, signed_in
from carerelay.core.actor import Actor
from carerelay.directory.models import Role
from carerelay.escalation import service
from carerelay.escalation.schemas import PolicyIn, PolicyOut, PolicyPatch

router = APIRouter(prefix="/api/escalation", tags=["escalation"])

EDITORS = (Role.INTEGRATION_ADMIN, Role.SYSTEM_ADMIN)


@router.get("/policies", response_model=list[PolicyOut])
def list_policies(session: DbSession, actor: Actor = signed_in()) -> list[PolicyOut]:
    return [PolicyOut.model_validate(p) for p in service.list_policies(session=session)]


@router.post("/policies", response_model=PolicyOut, status_code=status.HTTP_201_CREATED)
def create_policy(body: PolicyIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*EDITORS)) -> PolicyOut:
    return PolicyOut.model_validate(service.create_policy(session=session, clock=clock, actor=actor,
                                                          data=body.model_dump()))


@router.get("/policies/{policy_id}", response_model=PolicyOut)
def get_policy(policy_id: int, session: DbSession, actor: Actor = signed_in()) -> PolicyOut:
    return PolicyOut.model_validate(service.get_policy(session=session, policy_id=policy_id))


@router.patch("/policies/{policy_id}", response_model=PolicyOut)
def update_policy(policy_id: int, body: PolicyPatch, session: DbSession, clock: ClockDep,
                  actor: Actor = allow(*EDITORS)) -> PolicyOut:
    """Fields sent as null clear a scope field (alert_kind, department_id, priority, fallback_address)."""
    changes = body.model_dump(exclude_unset=True)
    return PolicyOut.model_validate(service.update_policy(session=session, clock=clock, actor=actor,
                                                          policy_id=policy_id, changes=changes))


@router.delete("/policies/{policy_id}", status_code=status.HTTP_204_NO_CONTENT)
def deactivate_policy(policy_id: int, session: DbSession, clock: ClockDep, actor: Actor = allow(*EDITORS)) -> Response:
    """Deactivates (the policy stays for the record and for the runs that used it)."""
    service.update_policy(session=session, clock=clock, actor=actor, policy_id=policy_id, changes={"active": False})
    return Response(status_code=status.HTTP_204_NO_CONTENT)

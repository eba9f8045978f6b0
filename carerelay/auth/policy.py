"""The organization's session policy: how long a shared unit device stays signed in while idle, and
how long a personal session may idle before its PIN is needed.

A hospital tunes these for its units, so they live in the database (one row, edited by a system
administrator and audited) rather than in each node's environment. A value left empty falls back to
the node's ``CARERELAY_SHARED_DEVICE_IDLE_MINUTES`` / ``CARERELAY_PIN_LOCK_MINUTES``: those remain the
defaults of an installation that never sets a policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.auth.models import AuthPolicy
from carerelay.config import Settings
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock

FIELDS = ("shared_device_idle_minutes", "pin_lock_minutes")


@dataclass(frozen=True)
class SessionLimits:
    shared_device_idle_minutes: int
    pin_lock_minutes: int
    from_settings: tuple[str, ...]


def session_limits(*, session: Session, settings: Settings) -> SessionLimits:
    """The limits in force now: the organization's where it set one, the node's setting otherwise."""
    row = session.get(AuthPolicy, 1)
    values: dict[str, int] = {}
    defaults: list[str] = []
    for name in FIELDS:
        chosen = getattr(row, name) if row is not None else None
        if chosen is None:
            chosen = getattr(settings, name)
            defaults.append(name)
        values[name] = int(chosen)
    return SessionLimits(values["shared_device_idle_minutes"], values["pin_lock_minutes"], tuple(defaults))


def update_session_limits(
    *, session: Session, clock: Clock, settings: Settings, actor: Actor, changes: dict[str, Any]
) -> SessionLimits:
    """``None`` for a field hands it back to the node's setting."""
    row = session.get(AuthPolicy, 1)
    if row is None:
        row = AuthPolicy(id=1)
        session.add(row)
    before = {name: getattr(row, name) for name in changes}
    for name, value in changes.items():
        setattr(row, name, value)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="auth.update_policy", object_type="policy",
                 object_id="auth", detail={"before": before, "after": changes})
    return session_limits(session=session, settings=settings)

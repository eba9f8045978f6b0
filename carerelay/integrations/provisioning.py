"""What SCIM, LDAP sync and SSO just-in-time creation share when they make or match people."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from carerelay.directory.models import Department, Profession

# The RBAC role a newly provisioned person starts with, from their profession; administrators
# grant anything more (scheduler rights, integration admin…) in carerelay.
_PROFESSION_ROLES = {"physician": "clinician", "app": "clinician", "resident": "clinician", "nurse": "nurse",
                     "tech": "clinician", "operator": "operator", "scheduler": "scheduler"}


def default_roles(profession: str) -> list[str]:
    role = _PROFESSION_ROLES.get(profession)
    return [role] if role else []


def profession_or(value: str | None, default: str) -> str:
    key = (value or "").strip().lower()
    return key if key in {p.value for p in Profession} else default


def department_id_by_name(session: Session, name: str | None) -> int | None:
    """Identity systems name departments in free text: match our code or name, ignoring case."""
    if not name or not name.strip():
        return None
    key = name.strip().lower()
    row = session.execute(
        select(Department.id).where(or_(func.lower(Department.code) == key, func.lower(Department.name) == key))
        .order_by(Department.id)
    ).first()
    return int(row[0]) if row else None

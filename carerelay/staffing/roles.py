"""Care roles: their names in addresses, files and vendor feeds, and the rules each one follows."""

from __future__ import annotations

from carerelay.core.errors import Invalid
from carerelay.staffing.models import CareRole

LABELS = {
    CareRole.PRIMARY_NURSE: "primary nurse",
    CareRole.SECONDARY_NURSE: "secondary nurse",
    CareRole.CHARGE_NURSE: "charge nurse",
    CareRole.TECH: "tech",
    CareRole.UNIT_CLERK: "unit clerk",
    CareRole.RESPIRATORY_THERAPIST: "respiratory therapist",
    CareRole.SITTER: "sitter",
}

ALIASES = {
    "nurse": CareRole.PRIMARY_NURSE, "rn": CareRole.PRIMARY_NURSE, "primary": CareRole.PRIMARY_NURSE,
    "pn": CareRole.PRIMARY_NURSE, "secondary": CareRole.SECONDARY_NURSE, "sn": CareRole.SECONDARY_NURSE,
    "charge": CareRole.CHARGE_NURSE, "cn": CareRole.CHARGE_NURSE, "pct": CareRole.TECH, "cna": CareRole.TECH,
    "na": CareRole.TECH, "patient care tech": CareRole.TECH, "clerk": CareRole.UNIT_CLERK,
    "hus": CareRole.UNIT_CLERK, "rt": CareRole.RESPIRATORY_THERAPIST, "rrt": CareRole.RESPIRATORY_THERAPIST,
}

EXCLUSIVE = frozenset({CareRole.PRIMARY_NURSE, CareRole.CHARGE_NURSE})
"""One person at a time per target: a bed has one primary nurse, a unit one charge nurse."""

UNIT_ONLY = frozenset({CareRole.CHARGE_NURSE, CareRole.UNIT_CLERK})
"""Assigned to a whole unit, never to a room or a bed."""

MULTI_UNIT = frozenset({CareRole.RESPIRATORY_THERAPIST})
"""May work several units at once; anyone else assigned to a second unit moves there."""


def find_role(text: str) -> CareRole | None:
    """A care role from its value, label or a common alias ("nurse", "RN", "PCT", "charge-nurse")."""
    key = " ".join(text.strip().lower().replace("-", " ").replace("_", " ").split())
    for role, label in LABELS.items():
        if key == label:
            return role
    return ALIASES.get(key)


def check_role(text: str, *, field: str = "role") -> CareRole:
    role = find_role(text)
    if role is None:
        known = ", ".join(r.value for r in CareRole)
        raise Invalid(f"unknown care role {text!r}; use one of {known} (or nurse, tech, charge, RN, PCT…)",
                      field=field)
    return role


def label(role: str) -> str:
    try:
        return LABELS[CareRole(role)]
    except ValueError:
        return role

"""API shapes of patients."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import StringConstraints

from carerelay.core.schemas import Input, Output

Name = Annotated[str, StringConstraints(min_length=1, max_length=120)]


class PatientIn(Input):
    mrn: Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9\-_.]+$")]
    family_name: Name
    given_name: Name
    birth_date: Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None = None


class PatientOut(Output):
    id: int
    mrn: str
    family_name: str
    given_name: str
    birth_date: str | None
    created_at: datetime

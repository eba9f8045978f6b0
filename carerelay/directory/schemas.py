"""API shapes of the directory."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, StrictBool, StringConstraints, field_validator

from carerelay.core.schemas import Input, Output
from carerelay.directory.models import ContactKind, DeviceKind, GroupKind, PersonnelType, Profession, Role

Code = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ExtId = Annotated[str, StringConstraints(min_length=1, max_length=120)]
Username = Annotated[str, StringConstraints(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@\-]*$")]


class SiteIn(Input):
    code: Code
    name: Name
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)]

    @field_validator("timezone")
    @classmethod
    def _iana(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. America/Chicago)") from None
        return value


class SiteOut(Output):
    id: int
    code: str
    name: str
    timezone: str


class DepartmentIn(Input):
    site_id: int = Field(strict=True)
    code: Code
    name: Name


class DepartmentOut(Output):
    id: int
    site_id: int
    code: str
    name: str


class ExternalIds(Input):
    unique_id: ExtId | None = None
    custom1: ExtId | None = None
    custom2: ExtId | None = None
    custom3: ExtId | None = None
    custom4: ExtId | None = None
    ehr_username: ExtId | None = None
    npi: Annotated[str, StringConstraints(pattern=r"^\d{10}$")] | None = None
    epic_ser_id: ExtId | None = None
    ms_upn: Annotated[str, StringConstraints(min_length=3, max_length=254)] | None = None
    kronos_id: ExtId | None = None


class PersonIn(ExternalIds):
    username: Username
    given_name: Name
    family_name: Name
    title: Annotated[str, StringConstraints(max_length=60)] | None = None
    profession: Profession
    department_id: int | None = Field(default=None, strict=True)
    email: Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    roles: list[Role] = Field(default_factory=list)
    home_cost_center: Annotated[str, StringConstraints(max_length=60)] | None = None
    away_cost_center: Annotated[str, StringConstraints(max_length=60)] | None = None
    personnel_type: PersonnelType | None = None
    password: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class PersonPatch(ExternalIds):
    given_name: Name | None = None
    family_name: Name | None = None
    title: Annotated[str, StringConstraints(max_length=60)] | None = None
    profession: Profession | None = None
    department_id: int | None = Field(default=None, strict=True)
    email: Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    roles: list[Role] | None = None
    home_cost_center: Annotated[str, StringConstraints(max_length=60)] | None = None
    away_cost_center: Annotated[str, StringConstraints(max_length=60)] | None = None
    personnel_type: PersonnelType | None = None
    active: StrictBool | None = None


class PersonOut(Output):
    id: int
    username: str
    given_name: str
    family_name: str
    display_name: str
    title: str | None
    profession: str
    department_id: int | None
    email: str | None
    active: bool
    roles: list[str]
    unique_id: str | None
    custom1: str | None
    custom2: str | None
    custom3: str | None
    custom4: str | None
    ehr_username: str | None
    npi: str | None
    epic_ser_id: str | None
    ms_upn: str | None
    kronos_id: str | None
    home_cost_center: str | None
    away_cost_center: str | None
    personnel_type: str | None
    created_at: datetime
    updated_at: datetime


class GroupIn(Input):
    kind: GroupKind = GroupKind.GROUP
    code: Code
    name: Name
    department_id: int | None = Field(default=None, strict=True)
    description: Annotated[str, StringConstraints(max_length=500)] | None = None
    member_ids: list[Annotated[int, Field(strict=True)]] = Field(default_factory=list)


class GroupOut(Output):
    id: int
    kind: str
    code: str
    name: str
    department_id: int | None
    description: str | None
    member_ids: list[int]


class MemberIn(Input):
    person_id: int = Field(strict=True)


class ContactPointIn(Input):
    kind: ContactKind
    value: Annotated[str, StringConstraints(min_length=1, max_length=254)]
    label: Annotated[str, StringConstraints(max_length=120)] | None = None
    rank: int = Field(default=0, strict=True, ge=0, le=100)


class ContactPointOut(Output):
    id: int
    person_id: int
    kind: str
    value: str
    label: str | None
    rank: int
    active: bool


class DeviceIn(Input):
    kind: DeviceKind
    identifier: Annotated[str, StringConstraints(min_length=1, max_length=120)]
    label: Annotated[str, StringConstraints(max_length=200)] | None = None
    person_id: int | None = Field(default=None, strict=True)
    department_id: int | None = Field(default=None, strict=True)
    shared: StrictBool = False


class DeviceOut(Output):
    id: int
    kind: str
    identifier: str
    label: str | None
    person_id: int | None
    department_id: int | None
    shared: bool
    active: bool


class VirtualPagerIn(Input):
    number: Annotated[str, StringConstraints(min_length=3, max_length=40, pattern=r"^[0-9]+$")]
    target: Annotated[str, StringConstraints(min_length=3, max_length=200)]
    label: Annotated[str, StringConstraints(max_length=200)] | None = None


class VirtualPagerOut(Output):
    id: int
    number: str
    target: str
    label: str | None
    active: bool

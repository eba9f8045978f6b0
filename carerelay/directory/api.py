"""Directory routes: thin adapters over directory.service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from carerelay.auth.deps import ClockDep, DbSession, allow, signed_in
from carerelay.core.actor import Actor
from carerelay.core.schemas import Page
from carerelay.directory import service
from carerelay.directory.models import GroupKind, Person, Profession, Role
from carerelay.directory.schemas import (
    ContactPointIn,
    ContactPointOut,
    DepartmentIn,
    DepartmentOut,
    DeviceIn,
    DeviceOut,
    GroupIn,
    GroupOut,
    MemberIn,
    PersonIn,
    PersonOut,
    PersonPatch,
    SiteIn,
    SiteOut,
    VirtualPagerIn,
    VirtualPagerOut,
)

router = APIRouter(prefix="/api", tags=["directory"])

ADMINS = (Role.SYSTEM_ADMIN,)
DEVICE_ADMINS = (Role.SYSTEM_ADMIN, Role.INTEGRATION_ADMIN)


def person_out(person: Person) -> PersonOut:
    data = {c: getattr(person, c) for c in PersonOut.model_fields if c != "roles"}
    return PersonOut(**data, roles=sorted(person.role_names))


@router.get("/sites", response_model=list[SiteOut])
def list_sites(session: DbSession, actor: Actor = signed_in()) -> list[SiteOut]:
    return [SiteOut.model_validate(s) for s in service.list_sites(session=session)]


@router.post("/sites", response_model=SiteOut, status_code=status.HTTP_201_CREATED)
def create_site(body: SiteIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*ADMINS)) -> SiteOut:
    site = service.create_site(session=session, clock=clock, actor=actor, **body.model_dump())
    return SiteOut.model_validate(site)


@router.get("/departments", response_model=list[DepartmentOut])
def list_departments(
    session: DbSession, site_id: Annotated[int | None, Query()] = None, actor: Actor = signed_in()
) -> list[DepartmentOut]:
    return [DepartmentOut.model_validate(d) for d in service.list_departments(session=session, site_id=site_id)]


@router.post("/departments", response_model=DepartmentOut, status_code=status.HTTP_201_CREATED)
def create_department(
    body: DepartmentIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*ADMINS)
) -> DepartmentOut:
    dept = service.create_department(session=session, clock=clock, actor=actor, **body.model_dump())
    return DepartmentOut.model_validate(dept)


@router.get("/people", response_model=Page[PersonOut])
def search_people(
    session: DbSession,
    q: Annotated[str | None, Query(max_length=120, description="Name prefix: 'hou', 'house g', 'g house'")] = None,
    role: Annotated[Role | None, Query()] = None,
    profession: Annotated[Profession | None, Query()] = None,
    department_id: Annotated[int | None, Query()] = None,
    id_field: Annotated[str | None, Query(description="External id field, e.g. npi, ehr_username")] = None,
    id_value: Annotated[str | None, Query(max_length=254)] = None,
    active: Annotated[bool | None, Query()] = True,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    actor: Actor = signed_in(),
) -> Page[PersonOut]:
    query = service.PersonQuery(q=q, role=role, profession=profession, department_id=department_id,
                                id_field=id_field, id_value=id_value, active=active)
    rows = service.search_people(session=session, query=query, offset=offset, limit=limit + 1)
    items = [PersonOut.model_validate(row) for row in rows[:limit]]
    return Page[PersonOut](items=items, offset=offset, limit=limit,
                           next_offset=offset + limit if len(rows) > limit else None)


@router.post("/people", response_model=PersonOut, status_code=status.HTTP_201_CREATED)
def create_person(body: PersonIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*ADMINS)) -> PersonOut:
    data = body.model_dump(exclude={"password"}, exclude_none=True)
    person = service.create_person(session=session, clock=clock, actor=actor, data=data, password=body.password)
    return person_out(person)


@router.get("/people/{person_id}", response_model=PersonOut)
def get_person(person_id: int, session: DbSession, actor: Actor = signed_in()) -> PersonOut:
    return person_out(service.get_person(session=session, person_id=person_id))


@router.patch("/people/{person_id}", response_model=PersonOut)
def update_person(
    person_id: int, body: PersonPatch, session: DbSession, clock: ClockDep, actor: Actor = allow(*ADMINS)
) -> PersonOut:
    person = service.update_person(session=session, clock=clock, actor=actor, person_id=person_id,
                                   changes=body.model_dump(exclude_unset=True))
    return person_out(person)


@router.get("/people/{person_id}/contact-points", response_model=list[ContactPointOut])
def list_contact_points(person_id: int, session: DbSession, actor: Actor = signed_in()) -> list[ContactPointOut]:
    return [ContactPointOut.model_validate(c) for c in service.list_contact_points(session=session,
                                                                                   person_id=person_id)]


@router.post("/people/{person_id}/contact-points", response_model=ContactPointOut,
             status_code=status.HTTP_201_CREATED)
def add_contact_point(
    person_id: int, body: ContactPointIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*ADMINS)
) -> ContactPointOut:
    point = service.add_contact_point(session=session, clock=clock, actor=actor, person_id=person_id,
                                      **body.model_dump())
    return ContactPointOut.model_validate(point)


@router.post("/people/{person_id}/contact-points/{contact_point_id}/deactivate", response_model=ContactPointOut)
def deactivate_contact_point(
    person_id: int, contact_point_id: int, session: DbSession, clock: ClockDep, actor: Actor = allow(*ADMINS)
) -> ContactPointOut:
    point = service.set_contact_point_active(session=session, clock=clock, actor=actor, person_id=person_id,
                                             contact_point_id=contact_point_id, active=False)
    return ContactPointOut.model_validate(point)


def group_out(session: DbSession, group_id: int) -> GroupOut:
    group = service.get_group(session=session, group_id=group_id)
    return GroupOut(id=group.id, kind=group.kind, code=group.code, name=group.name,
                    department_id=group.department_id, description=group.description,
                    member_ids=service.group_member_ids(session=session, group_id=group.id))


@router.get("/groups", response_model=list[GroupOut])
def list_groups(
    session: DbSession, kind: Annotated[GroupKind | None, Query()] = None, actor: Actor = signed_in()
) -> list[GroupOut]:
    return [group_out(session, g.id) for g in service.list_groups(session=session, kind=kind)]


@router.post("/groups", response_model=GroupOut, status_code=status.HTTP_201_CREATED)
def create_group(body: GroupIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*ADMINS)) -> GroupOut:
    group = service.create_group(session=session, clock=clock, actor=actor, **body.model_dump())
    return group_out(session, group.id)


@router.get("/groups/{group_id}", response_model=GroupOut)
def get_group(group_id: int, session: DbSession, actor: Actor = signed_in()) -> GroupOut:
    return group_out(session, group_id)


@router.post("/groups/{group_id}/members", response_model=GroupOut)
def add_member(
    group_id: int, body: MemberIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*ADMINS)
) -> GroupOut:
    service.add_group_member(session=session, clock=clock, actor=actor, group_id=group_id, person_id=body.person_id)
    return group_out(session, group_id)


@router.delete("/groups/{group_id}/members/{person_id}", response_model=GroupOut)
def remove_member(
    group_id: int, person_id: int, session: DbSession, clock: ClockDep, actor: Actor = allow(*ADMINS)
) -> GroupOut:
    service.remove_group_member(session=session, clock=clock, actor=actor, group_id=group_id, person_id=person_id)
    return group_out(session, group_id)


@router.get("/devices", response_model=list[DeviceOut])
def list_devices(
    session: DbSession, department_id: Annotated[int | None, Query()] = None, actor: Actor = signed_in()
) -> list[DeviceOut]:
    return [DeviceOut.model_validate(d) for d in service.list_devices(session=session, department_id=department_id)]


@router.post("/devices", response_model=DeviceOut, status_code=status.HTTP_201_CREATED)
def register_device(
    body: DeviceIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*DEVICE_ADMINS)
) -> DeviceOut:
    return DeviceOut.model_validate(service.register_device(session=session, clock=clock, actor=actor,
                                                            **body.model_dump()))


@router.get("/virtual-pagers", response_model=list[VirtualPagerOut])
def list_virtual_pagers(session: DbSession, actor: Actor = signed_in()) -> list[VirtualPagerOut]:
    return [VirtualPagerOut.model_validate(v) for v in service.list_virtual_pagers(session=session)]


@router.post("/virtual-pagers", response_model=VirtualPagerOut, status_code=status.HTTP_201_CREATED)
def create_virtual_pager(
    body: VirtualPagerIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*DEVICE_ADMINS)
) -> VirtualPagerOut:
    return VirtualPagerOut.model_validate(service.create_virtual_pager(session=session, clock=clock, actor=actor,
                                                                       **body.model_dump()))

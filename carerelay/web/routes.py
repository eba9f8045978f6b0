"""Every page of the web client, one router per area, mounted by the application."""

from __future__ import annotations

from fastapi import APIRouter

from carerelay.web import (
    admin,
    alerts,
    compliance,
    directory,
    embed,
    inbox,
    me,
    pages,
    paging,
    patients,
    schedule,
    staffing,
)

router = APIRouter(include_in_schema=False)
for area in (pages, inbox, alerts, directory, paging, patients, staffing, me, schedule, admin, compliance, embed):
    router.include_router(area.router)

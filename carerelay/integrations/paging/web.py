"""The operator's paging page: a number and a message, paged like any page from the network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from carerelay.auth.deps import ClockDep, DbSession, SettingsDep, allow
from carerelay.core.actor import Actor
from carerelay.integrations.paging import service
from carerelay.integrations.paging.api import PAGERS
from carerelay.web.pages import templates

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class _Result:
    accepted: bool
    text: str


@router.get("/page", response_class=HTMLResponse)
def page_form(request: Request, settings: SettingsDep, actor: Actor = allow(*PAGERS)) -> Response:
    return templates.TemplateResponse(request, "paging_page.html", {"org": settings.organization_name,
                                                                    "result": None})


@router.post("/page", response_class=HTMLResponse)
def page_submit(
    request: Request, session: DbSession, clock: ClockDep, settings: SettingsDep,
    number: Annotated[str, Form(min_length=1, max_length=128)],
    text: Annotated[str, Form(min_length=1, max_length=2000)],
    priority: Annotated[Literal["routine", "urgent", "stat", "critical"], Form()] = "urgent",
    actor: Actor = allow(*PAGERS),
) -> Response:
    """A refused number is kept in the monitor too (the page returns normally, so the refusal commits)."""
    outcome = service.page_from_operator(session=session, clock=clock, actor=actor, number=number.strip(),
                                         text=text.strip(), priority=priority)
    words = (f"Paged {number}: alert {outcome.alert.id} raised." if outcome.accepted and outcome.alert
             else f"Paged {number}: {outcome.text}." if outcome.accepted else f"Not paged: {outcome.text}.")
    context = {"org": settings.organization_name, "result": _Result(outcome.accepted, words), "number": number,
               "text": "" if outcome.accepted else text, "priority": priority}
    return templates.TemplateResponse(request, "paging_page.html", context,
                                      status_code=200 if outcome.accepted else 422)

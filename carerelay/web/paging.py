"""Paging a number from the web: the operator's page at ``/page`` and the board's "Page a number".

Both forms are one partial (``paging/_page_number_form.html``) and one call: the paging intake's
``page_from_operator``, the path a page from the network takes. So the number means the same
everywhere (a mapped recipient, a virtual pager number, a bed; 555-2000 is 5552000), the paging
rules apply, and a refused number is kept in the feed monitor with its reason — the route returns
normally, so that record commits. Only where each lands differs: ``/page`` shows the outcome, the
board goes to the alert's trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from carerelay.auth.deps import ClockDep, DbSession, allow
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import Invalid
from carerelay.directory import service as directory
from carerelay.integrations.paging import service as paging
from carerelay.integrations.paging.api import PAGERS
from carerelay.messaging.models import Priority
from carerelay.web.common import form_allow, render, viewer_of, web_router

router = web_router()


@dataclass(frozen=True)
class PageForm:
    """What the operator typed, kept when the page is refused."""

    number: str = ""
    text: str = ""
    priority: str = Priority.URGENT.value
    error: str | None = None


def page_form_context(session: Session, form: PageForm | None = None) -> dict[str, Any]:
    """What the partial needs: the form, the active virtual pager numbers, the priorities."""
    return {"page_form": form or PageForm(), "priorities": [p.value for p in Priority],
            "pagers": [p for p in directory.list_virtual_pagers(session=session) if p.active]}


def send_page(*, session: Session, clock: Clock, actor: Actor, form: PageForm) -> paging.Outcome:
    """Check the form, then page; a refusal comes back in the outcome, already recorded."""
    if not form.text.strip():
        raise Invalid("write what the page says", field="text")
    if form.priority not in {p.value for p in Priority}:
        raise Invalid("unknown priority", field="priority")
    return paging.page_from_operator(session=session, clock=clock, actor=actor, number=form.number,
                                     text=form.text.strip(), priority=form.priority)


def refused(form: PageForm, outcome: paging.Outcome) -> PageForm:
    return PageForm(form.number, form.text, form.priority, f"Not paged: {outcome.text}.")


@router.get("/page", response_class=HTMLResponse)
def page_form(request: Request, session: DbSession, actor: Actor = allow(*PAGERS)) -> Response:
    viewer = viewer_of(request, session, actor)
    return render(request, "paging/page.html", viewer=viewer, session=session, result=None,
                  **page_form_context(session))


@router.post("/page", response_class=HTMLResponse)
def page_submit(
    request: Request, session: DbSession, clock: ClockDep,
    number: Annotated[str, Form(min_length=1, max_length=128)],
    text: Annotated[str, Form(max_length=2000)] = "",
    priority: Annotated[str, Form(max_length=10)] = Priority.URGENT.value,
    actor: Actor = form_allow(*PAGERS),
) -> Response:
    viewer = viewer_of(request, session, actor)
    form = PageForm(number, text, priority)
    try:
        outcome = send_page(session=session, clock=clock, actor=actor, form=form)
    except Invalid as exc:
        return render(request, "paging/page.html", viewer=viewer, session=session, result=None, status_code=422,
                      **page_form_context(session, PageForm(number, text, priority, exc.message)))
    if not outcome.accepted:
        return render(request, "paging/page.html", viewer=viewer, session=session, result=None, status_code=422,
                      **page_form_context(session, refused(form, outcome)))
    return render(request, "paging/page.html", viewer=viewer, session=session, result=outcome,
                  number=outcome.message.recipient_id, **page_form_context(session, PageForm(priority=priority)))

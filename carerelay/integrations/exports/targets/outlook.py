"""Outlook: each scheduled slot as an event on the person's calendar, through Microsoft Graph.

Only people with a Microsoft UPN get events. A swap deletes the event from the giver's calendar and
creates one on the taker's; changed notes or times update the event in place. Creates carry a
``transactionId`` derived from the item, so a create retried after a lost answer is not duplicated
(Graph drops a repeated transactionId). An app registration with the ``Calendars.ReadWrite``
application permission signs in with the client-credentials grant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field

from carerelay.core.schemas import Input
from carerelay.integrations.exports.base import (
    BuildContext,
    Change,
    ExportError,
    PushOutcome,
    Row,
    Scheduled,
    Target,
    WindowOptions,
)
from carerelay.integrations.exports.transport import Http, secret
from carerelay.scheduling.timeline import local_window


class OutlookMapping(Input):
    send_to_outlook: bool = True
    include_schedule_notes: bool = False
    include_assignment_information: bool = True
    send_as_free: bool = Field(default=False, description="Show the time as free instead of busy")


class OutlookOptions(WindowOptions):
    past_days: int = Field(default=1, ge=0, le=60)
    future_days: int = Field(default=60, ge=0, le=400)
    category: str | None = Field(default="carerelay schedule", max_length=100)


def graph_token(http: Http) -> str:
    transport = http.transport
    if not transport.token_url or not transport.client_id:
        raise ExportError("the Outlook transport needs token_url and client_id", retryable=False)
    response = http.client.post(transport.token_url, data={
        "grant_type": "client_credentials", "client_id": transport.client_id,
        "client_secret": secret(transport.secret_env) or "", "scope": "https://graph.microsoft.com/.default"},
        timeout=transport.timeout_seconds)
    http.calls.append({"method": "POST", "url": transport.token_url, "status": response.status_code})
    if response.status_code != 200:
        detail = response.json().get("error_description", response.text[:200]) if response.content else ""
        raise ExportError(f"Microsoft sign-in refused the app {transport.client_id}: {detail}",
                          retryable=response.status_code >= 500)
    token: str = response.json()["access_token"]
    return token


class Outlook(Target):
    name = "outlook"
    label = "Outlook calendars (Microsoft Graph)"
    direction = "api"
    default_person_key = "ms_upn"
    person_keys = ("ms_upn",)
    default_trigger: ClassVar[dict[str, Any]] = {"kind": "on_change"}
    default_content = "delta"
    content_type = "application/json"
    options_model = OutlookOptions
    mapping_model = OutlookMapping
    send_flag = "send_to_outlook"

    def accepts(self, item: Scheduled, ctx: BuildContext) -> str | None:
        return "unnamed slot" if item.person is None else None

    def rows(self, ctx: BuildContext) -> list[Row]:
        return [Row(f"slot:{item.slot_id}:person:{item.person.id}", on_date=item.on_date,
                    values=_event(item, ctx.options)) for item in ctx.items if item.person is not None]

    def push(self, ctx: BuildContext, http: Http, changes: Sequence[Change], rows: Sequence[Row]) -> PushOutcome:
        outcome = PushOutcome(calls=http.calls)
        if not changes:
            return outcome
        try:
            token = graph_token(http)
        except ExportError as exc:
            outcome.error = exc
            return outcome
        headers = {"Authorization": f"Bearer {token}"}
        for change in changes:
            try:
                outcome.done.append((change, self._apply(http, headers, ctx, change)))
            except ExportError as exc:
                if exc.retryable:
                    outcome.error = exc
                    return outcome
                outcome.item_errors.append({"key": change.key, "upn": change.values.get("upn"),
                                            "problem": str(exc)})
        return outcome

    def _apply(self, http: Http, headers: dict[str, str], ctx: BuildContext, change: Change) -> str | None:
        values = change.values
        upn = quote(str(values["upn"]), safe="@")
        body = {k: v for k, v in values.items() if k != "upn"}
        moved = change.before is not None and change.before.get("upn") != values.get("upn")
        if change.action == "delete" or moved:
            old = change.before or values
            if change.remote_id:
                http.request("DELETE", f"/users/{quote(str(old['upn']), safe='@')}/events/{change.remote_id}",
                             headers=headers, ok=(204, 404))
            if change.action == "delete":
                return None
        if change.action == "change" and change.remote_id and not moved:
            response = http.request("PATCH", f"/users/{upn}/events/{change.remote_id}", headers=headers,
                                    json=body, record=body, ok=(200, 404))
            if response.status_code == 200:
                return change.remote_id
        created = {**body, "transactionId": _transaction_id(ctx.connector_id, change)}
        response = http.request("POST", f"/users/{upn}/events", headers=headers, json=created, record=created,
                                ok=(201,))
        event_id: str = response.json()["id"]
        return event_id


def _transaction_id(connector_id: int, change: Change) -> str:
    seed = f"{connector_id}:{change.key}:{sorted(change.values.items())}"
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


def _event(item: Scheduled, options: OutlookOptions) -> dict[str, Any]:
    m = item.mapping
    assert item.person is not None
    lines = []
    if m["include_assignment_information"]:
        lines += [f"Assignment: {item.assignment_name} ({item.assignment_code})",
                  f"Department: {item.department_name}", f"Call order: {item.call_order}",
                  f"When: {local_window(item.starts_at, item.ends_at, item.timezone)}"]
    if m["include_schedule_notes"] and item.notes:
        lines.append(f"Notes: {item.notes}")
    event: dict[str, Any] = {
        "upn": item.person.key,
        "subject": item.assignment_name,
        "body": {"contentType": "text", "content": "\n".join(lines)},
        "start": {"dateTime": item.starts_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": item.ends_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "showAs": "free" if m["send_as_free"] else "busy",
        "isReminderOn": False,
    }
    if options.category:
        event["categories"] = [options.category]
    return event

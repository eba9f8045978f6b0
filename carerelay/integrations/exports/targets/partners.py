"""Clinical collaboration partners (PerfectServe-style, Spok, Amtelco, Voalte, Vocera, Epic Secure Chat).

Whenever a published slot changes, the on-call person of each mapped assignment is pushed to the
partner, to every site and team the assignment is mapped to, signed in as the configured background
user. None of these vendors publishes its scheduling API, so carerelay speaks one documented REST
shape (docs/subsystems/exports.md) that the partner — or the hospital's interface engine in front of
it — answers; the vendor name is recorded on each call for the partner's logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal
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

VENDORS = ("perfectserve", "spok", "amtelco", "voalte", "vocera", "epic_secure_chat")


class TeamRef(Input):
    site: str = Field(min_length=1, max_length=60)
    team: str = Field(min_length=1, max_length=100)


class PartnerMapping(Input):
    teams: list[TeamRef] = Field(min_length=1, description="Every site and team this assignment is pushed to")


class PartnerOptions(WindowOptions):
    vendor: Literal["perfectserve", "spok", "amtelco", "voalte", "vocera", "epic_secure_chat"]
    future_days: int = Field(default=7, ge=0, le=60)


class ClinicalPartner(Target):
    name = "ccc_partner"
    label = "Clinical collaboration partner (PerfectServe, Spok, Amtelco, Voalte, Vocera, Epic Secure Chat)"
    direction = "api"
    default_person_key = "unique_id"
    default_trigger: ClassVar[dict[str, Any]] = {"kind": "on_change"}
    default_content = "delta"
    content_type = "application/json"
    options_model = PartnerOptions
    mapping_model = PartnerMapping

    def rows(self, ctx: BuildContext) -> list[Row]:
        rows = []
        for item in ctx.items:
            for ref in item.mapping["teams"]:
                rows.append(Row(f"slot:{item.slot_id}:{ref['site']}:{ref['team']}", on_date=item.on_date,
                                values=_entry(item, ref)))
        return rows

    def push(self, ctx: BuildContext, http: Http, changes: Sequence[Change], rows: Sequence[Row]) -> PushOutcome:
        outcome = PushOutcome(calls=http.calls)
        if not changes:
            return outcome
        vendor = ctx.options.vendor
        try:
            token = _sign_in(http, vendor)
        except ExportError as exc:
            outcome.error = exc
            return outcome
        for change in changes:
            v = change.values
            path = (f"/api/v1/sites/{quote(v['site'], safe='')}/teams/{quote(v['team'], safe='')}"
                    f"/on-call/{quote(v['shift_id'], safe='')}")
            try:
                for attempt in range(2):
                    headers = {"Authorization": f"Bearer {token}", "X-Partner-Vendor": vendor}
                    try:
                        if change.action == "delete":
                            http.request("DELETE", path, headers=headers, ok=(200, 204, 404))
                        else:
                            http.request("PUT", path, headers=headers, json=v, record=v, ok=(200, 201, 204))
                        break
                    except ExportError as exc:
                        if "HTTP 401" in str(exc) and attempt == 0:
                            token = _sign_in(http, vendor)
                            continue
                        raise
                outcome.done.append((change, None))
            except ExportError as exc:
                if exc.retryable:
                    outcome.error = exc
                    return outcome
                outcome.item_errors.append({"key": change.key, "site": v["site"], "team": v["team"],
                                            "problem": str(exc)})
        return outcome


def _sign_in(http: Http, vendor: str) -> str:
    transport = http.transport
    if not transport.username:
        raise ExportError("the partner transport needs the background user's username", retryable=False)
    body = {"username": transport.username, "password": secret(transport.secret_env) or ""}
    response = http.request("POST", "/api/v1/session", json=body, headers={"X-Partner-Vendor": vendor},
                            ok=(200, 201), record={"username": transport.username})
    token: str = response.json()["token"]
    return token


def _entry(item: Scheduled, ref: dict[str, str]) -> dict[str, Any]:
    person = item.person
    return {
        "site": ref["site"], "team": ref["team"], "shift_id": f"carerelay-{item.slot_id}",
        "assignment": item.assignment_name, "call_order": item.call_order,
        "start": item.starts_at.isoformat(), "end": item.ends_at.isoformat(),
        "person_id": person.key if person is not None else None,
        "name": item.who,
        "pager": person.contacts.get("pager") if person is not None else None,
        "phone": (person.contacts.get("phone") if person is not None else item.placeholder_contact),
    }

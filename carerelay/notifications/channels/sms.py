"""SMS through an HTTP gateway: POST JSON {to, text, reference} with a bearer token.

Most hospital SMS aggregators accept this shape or sit behind a small adapter that does; a 4xx other
than 408/429 is a permanent refusal (bad number), anything else is retried.
"""

from __future__ import annotations

import httpx2 as httpx

from carerelay.notifications.channels import ChannelError, Outgoing

RETRYABLE = {408, 425, 429}


class SmsGateway:
    name = "sms"

    def __init__(self, url: str, token: str | None, timeout: float = 10.0) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout

    def send(self, outgoing: Outgoing) -> str | None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        payload = {"to": outgoing.address, "text": f"{outgoing.subject}\n{outgoing.body}"[:1600],
                   "reference": f"carerelay-{outgoing.delivery_id}"}
        try:
            response = httpx.post(self.url, json=payload, headers=headers, timeout=self.timeout)
        except httpx.TransportError as exc:
            raise ChannelError(f"SMS gateway unreachable: {exc}") from exc
        if response.status_code >= 400:
            retryable = response.status_code >= 500 or response.status_code in RETRYABLE
            raise ChannelError(f"SMS gateway answered {response.status_code}: {response.text[:200]}",
                               retryable=retryable)
        try:
            ref = response.json().get("id")
        except ValueError:
            ref = None
        return str(ref) if ref is not None else None

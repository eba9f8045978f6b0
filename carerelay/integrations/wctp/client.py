"""The outbound WCTP client: one per gateway URL, with its own connection pool and retries.

What is retried: a connection that fails, an HTTP 5xx, a WCTP 6xx (the other side's own trouble),
up to ``attempts`` times with a growing pause. What is not: a WCTP 3xx/4xx/5xx refusal (a bad
sender, code or recipient stays bad), which comes back as ``WctpFailure(retryable=False)``. Answers
are parsed with the same hardened parser as requests: a carrier is a network peer too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx2 as httpx
from lxml import etree

from carerelay.integrations.wctp import build
from carerelay.integrations.wctp.model import (
    CANNOT_PARSE,
    MessageReply,
    Operation,
    StatusInfo,
    SubmitRequest,
    WctpError,
    read_element,
)
from carerelay.integrations.wctp.xml import XmlRefused, local_name, parse_document

CONTENT_TYPE = "text/xml; charset=utf-8"


class WctpFailure(Exception):
    def __init__(self, code: int, text: str, *, retryable: bool) -> None:
        super().__init__(f"{code} {text}")
        self.code, self.text, self.retryable = code, text, retryable


@dataclass(frozen=True)
class Polled:
    sequence_no: int
    operation: Operation

    @property
    def status(self) -> StatusInfo | None:
        return self.operation if isinstance(self.operation, StatusInfo) else None

    @property
    def reply(self) -> MessageReply | None:
        return self.operation if isinstance(self.operation, MessageReply) else None

    @property
    def submit(self) -> SubmitRequest | None:
        return self.operation if isinstance(self.operation, SubmitRequest) else None


def _kids(node: etree._Element) -> list[etree._Element]:
    return [c for c in node if isinstance(c.tag, str)]


def _outcome(node: etree._Element) -> tuple[int, str]:
    name = local_name(node)
    code = (node.get("successCode") if name in ("wctp-Success", "wctp-ClientSuccess") else node.get("errorCode"))
    text = node.get("successText") or node.get("errorText") or (node.text or "")
    try:
        return int(str(code).strip()), str(text)
    except ValueError:
        raise WctpFailure(CANNOT_PARSE, f"answer without a numeric code in {name}", retryable=True) from None


class WctpClient:
    def __init__(self, url: str, *, sender_id: str, security_code: str | None = None, timeout: float = 10.0,
                 attempts: int = 3, backoff: float = 0.5, max_bytes: int = 4 * 1024 * 1024,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url
        self.sender_id = sender_id
        self.security_code = security_code
        self.attempts = attempts
        self.backoff = backoff
        self.max_bytes = max_bytes
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WctpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ transport

    def exchange(self, body: bytes, *, url: str | None = None) -> etree._Element:
        """POST one document and return the operation element of the answer (retrying what can be)."""
        last: WctpFailure | None = None
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                answer = self._post(url or self.url, body)
            except WctpFailure as exc:
                if not exc.retryable:
                    raise
                last = exc
                continue
            return answer
        assert last is not None
        raise last

    def _post(self, url: str, body: bytes) -> etree._Element:
        try:
            response = self._http.post(url, content=body, headers={"Content-Type": CONTENT_TYPE})
        except httpx.TransportError as exc:
            raise WctpFailure(600, f"cannot reach {url}: {exc}", retryable=True) from None
        if response.status_code >= 500:
            raise WctpFailure(600, f"{url} answered HTTP {response.status_code}", retryable=True)
        if response.status_code >= 400:
            raise WctpFailure(400, f"{url} answered HTTP {response.status_code}: {response.text[:200]}",
                              retryable=False)
        try:
            root = parse_document(response.content, max_bytes=self.max_bytes)
        except XmlRefused as exc:
            raise WctpFailure(exc.code, f"unreadable answer from {url}: {exc.text}", retryable=True) from None
        kids = _kids(root)
        if local_name(root) != "wctp-Operation" or len(kids) != 1:
            raise WctpFailure(CANNOT_PARSE, f"{url} did not answer a wctp-Operation", retryable=True)
        return kids[0]

    def confirm(self, body: bytes, *, url: str | None = None) -> tuple[int, str]:
        """For operations answered by wctp-Confirmation (SubmitRequest, StatusInfo, MessageReply)."""
        answer = self.exchange(body, url=url)
        kids = _kids(answer)
        if local_name(answer) != "wctp-Confirmation" or len(kids) != 1:
            raise WctpFailure(CANNOT_PARSE, f"expected wctp-Confirmation, got {local_name(answer)}", retryable=True)
        code, text = _outcome(kids[0])
        if local_name(kids[0]) == "wctp-Failure" or code >= 300:
            raise WctpFailure(code, text, retryable=code >= 600)
        return code, text

    # ------------------------------------------------------------ operations

    def submit(self, *, recipient_id: str, message_id: str, text: str, now: datetime, choices: Sequence[str] = (),
               priority: str = "NORMAL", notify_delivered: bool = True, notify_read: bool = True,
               allow_response: bool = True, notify_queued: bool = False,
               deliver_before: datetime | None = None) -> tuple[int, str]:
        body = build.submit_request(sender_id=self.sender_id, security_code=self.security_code,
                                    recipient_id=recipient_id, message_id=message_id, text=text, submitted_at=now,
                                    choices=choices, priority=priority, allow_response=allow_response,
                                    notify_queued=notify_queued, notify_delivered=notify_delivered,
                                    notify_read=notify_read, deliver_before=deliver_before)
        return self.confirm(body)

    def poll(self, *, acknowledge: Sequence[int] = (), max_messages: int = 10) -> list[Polled]:
        """Messages waiting for us (StatusInfo, MessageReply…); ``acknowledge`` the ones handled last time."""
        answer = self.exchange(build.poll_for_messages(poller_id=self.sender_id, security_code=self.security_code,
                                                       max_messages=max_messages, received=acknowledge))
        if local_name(answer) != "wctp-PollResponse":
            raise WctpFailure(CANNOT_PARSE, f"expected wctp-PollResponse, got {local_name(answer)}", retryable=True)
        found: list[Polled] = []
        for kid in _kids(answer):
            name = local_name(kid)
            if name == "wctp-Failure":
                code, text = _outcome(kid)
                raise WctpFailure(code, text, retryable=code >= 600)
            if name != "wctp-Message":
                continue
            inner = _kids(kid)
            seq = (kid.get("sequenceNo") or "").strip()
            if len(inner) != 1 or not seq.isdigit():
                raise WctpFailure(CANNOT_PARSE, "a wctp-Message without one operation or a sequenceNo",
                                  retryable=False)
            try:
                found.append(Polled(int(seq), read_element(inner[0])))
            except WctpError as exc:
                raise WctpFailure(exc.code, f"message {seq}: {exc.text}", retryable=False) from None
        return found

    def versions(self, *, now: datetime) -> list[str]:
        answer = self.exchange(build.version_query(inquirer=self.sender_id, now=now))
        if local_name(answer) != "wctp-VersionResponse":
            raise WctpFailure(CANNOT_PARSE, f"expected wctp-VersionResponse, got {local_name(answer)}",
                              retryable=True)
        return [str(k.get("dtdName")) for k in _kids(answer) if local_name(k) == "wctp-DTDSupport"]

    def lookup(self, *, recipient_id: str, message_id: str) -> bool:
        answer = self.exchange(build.lookup_subscriber(sender_id=self.sender_id, security_code=self.security_code,
                                                       message_id=message_id, recipient_id=recipient_id))
        if local_name(answer) != "wctp-LookupResponse":
            raise WctpFailure(CANNOT_PARSE, f"expected wctp-LookupResponse, got {local_name(answer)}",
                              retryable=True)
        return any(local_name(k) == "wctp-LookupData" for k in _kids(answer))


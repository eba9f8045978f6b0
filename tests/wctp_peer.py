"""A second, independent WCTP 1.3 peer for the tests, written from the DTD (wctp-dtd-v1r3) and
sharing no code with carerelay's WCTP package: the standard library's ElementTree and HTTP server.

It plays a paging carrier (accepts SubmitRequest for its subscribers, answers VersionQuery,
PollForMessages with the StatusInfo / MessageReply its devices produced) and an enterprise host
(accepts StatusInfo and MessageReply pushed to it). It can be told to fail the next requests with
an HTTP status or a WCTP code, to exercise retries.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'


def _attrs(values: dict[str, str]) -> str:
    return "".join(f' {k}="{_escape(v)}"' for k, v in values.items())


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def operation(body: str) -> bytes:
    return (HEAD + f'<wctp-Operation wctpVersion="wctp-dtd-v1r3">{body}</wctp-Operation>').encode()


def confirmation(code: int, text: str) -> bytes:
    tag = "wctp-Success" if code < 300 else "wctp-Failure"
    kind = "success" if code < 300 else "error"
    return operation(f"<wctp-Confirmation><{tag}{_attrs({kind + 'Code': str(code), kind + 'Text': text})}/>"
                     f"</wctp-Confirmation>")


def response_header(response_to: str, originator: str, recipient: str, message_id: str) -> str:
    return (f'<wctp-ResponseHeader{_attrs({"responseToMessageID": response_to})}>'
            f'<wctp-Originator{_attrs({"senderID": originator})}/>'
            f'<wctp-MessageControl{_attrs({"messageID": message_id})}/>'
            f'<wctp-Recipient{_attrs({"recipientID": recipient})}/></wctp-ResponseHeader>')


def status_info(response_to: str, originator: str, recipient: str, kind: str, message_id: str) -> str:
    return (f"<wctp-StatusInfo>{response_header(response_to, originator, recipient, message_id)}"
            f'<wctp-Notification type="{kind}"/></wctp-StatusInfo>')


def message_reply(response_to: str, originator: str, recipient: str, text: str, message_id: str) -> str:
    return (f'<wctp-MessageReply MCRMessageReply="true">'
            f"{response_header(response_to, originator, recipient, message_id)}"
            f"<wctp-Payload><wctp-Alphanumeric>{_escape(text)}</wctp-Alphanumeric></wctp-Payload>"
            f"</wctp-MessageReply>")


@dataclass
class Submitted:
    sender: str
    recipient: str
    message_id: str
    text: str
    choices: list[str]
    notify_delivered: bool
    notify_read: bool


@dataclass
class Peer:
    accounts: dict[str, str]
    subscribers: set[str]
    submitted: list[Submitted] = field(default_factory=list)
    pushed: list[ET.Element] = field(default_factory=list)
    requests: int = 0
    fail_next: list[int] = field(default_factory=list)  # HTTP statuses (>= 500) or WCTP codes (< 500) to answer
    _queue: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    _seq: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    # ---- what the peer's devices do

    def _enqueue(self, poller: str, element: str) -> None:
        with self.lock:
            self._seq += 1
            self._queue.setdefault(poller, []).append((self._seq, element))

    def device_reports(self, message_id: str, *, delivered: bool = True, read: bool = True,
                       reply: str | None = None) -> list[str]:
        """The pager of this page was reached / opened / answered: reports queued for its sender."""
        page = next(s for s in self.submitted if s.message_id == message_id)
        made: list[str] = []
        for kind, wanted in (("DELIVERED", delivered and page.notify_delivered), ("READ", read and page.notify_read)):
            if wanted:
                made.append(status_info(message_id, page.recipient, page.sender, kind, f"P{len(made)}"))
        if reply is not None:
            made.append(message_reply(message_id, page.recipient, page.sender, reply, "PR"))
        for element in made:
            self._enqueue(page.sender, element)
        return made

    # ---- the protocol

    def handle(self, body: bytes) -> tuple[int, bytes]:
        with self.lock:
            self.requests += 1
            failure = self.fail_next.pop(0) if self.fail_next else None
        if failure is not None and failure >= 500:
            return failure, b"unavailable"
        if failure is not None:
            return 200, confirmation(failure, "told to fail")
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return 200, confirmation(301, "Cannot parse input")
        if root.tag != "wctp-Operation" or len(root) != 1:
            return 200, confirmation(302, "XML validation error")
        op = root[0]
        handler = {"wctp-VersionQuery": self._version, "wctp-SubmitRequest": self._submit,
                   "wctp-PollForMessages": self._poll, "wctp-StatusInfo": self._pushed,
                   "wctp-MessageReply": self._pushed}.get(op.tag)
        if handler is None:
            return 200, confirmation(304, "Operation not supported")
        return 200, handler(op)

    def _version(self, op: ET.Element) -> bytes:
        who = _attrs({"responder": "test-peer", "inquirer": op.get("inquirer", "")})
        return operation(f"<wctp-VersionResponse{who}>"
                         f'<wctp-DTDSupport dtdName="wctp-dtd-v1r3" supportType="Supported"/>'
                         f"</wctp-VersionResponse>")

    def _check(self, sender: str | None, code: str | None) -> int:
        if sender not in self.accounts:
            return 401
        return 0 if self.accounts[sender] == (code or "") else 402

    def _submit(self, op: ET.Element) -> bytes:
        header = op.find("wctp-SubmitHeader")
        if header is None or [c.tag for c in header] != ["wctp-Originator", "wctp-MessageControl", "wctp-Recipient"]:
            return confirmation(302, "XML validation error")
        originator, control, recipient = list(header)
        refused = self._check(originator.get("senderID"), originator.get("securityCode"))
        if refused:
            return confirmation(refused, "Invalid senderID" if refused == 401 else "Invalid securityCode")
        if recipient.get("recipientID") not in self.subscribers:
            return confirmation(403, "Invalid recipientID")
        payload = op.find("wctp-Payload")
        assert payload is not None
        alpha = payload.find("wctp-Alphanumeric")
        mcr = payload.find("wctp-MCR")
        text = alpha.text or "" if alpha is not None else (mcr.findtext("wctp-MessageText") or "" if mcr is not None
                                                            else "")
        choices = [c.text or "" for c in mcr.findall("wctp-Choice")] if mcr is not None else []
        self.submitted.append(Submitted(originator.get("senderID", ""), recipient.get("recipientID", ""),
                                        control.get("messageID", ""), text, choices,
                                        control.get("notifyWhenDelivered") == "true",
                                        control.get("notifyWhenRead") == "true"))
        return confirmation(200, "Message queued for delivery")

    def _poll(self, op: ET.Element) -> bytes:
        poller = op.get("pollerID", "")
        refused = self._check(poller, op.get("securityCode"))
        if refused:
            return operation(f'<wctp-PollResponse><wctp-Failure errorCode="{refused}" errorText="refused"/>'
                             f"</wctp-PollResponse>")
        acked = {int(r.get("sequenceNo", "0")) for r in op.findall("wctp-MessageReceived")}
        with self.lock:
            waiting = [(s, e) for s, e in self._queue.get(poller, []) if s not in acked]
            self._queue[poller] = waiting
        if not waiting:
            return operation("<wctp-PollResponse><wctp-NoMessages/></wctp-PollResponse>")
        messages = "".join(f'<wctp-Message sequenceNo="{s}">{e}</wctp-Message>' for s, e in waiting)
        return operation(f"<wctp-PollResponse>{messages}</wctp-PollResponse>")

    def _pushed(self, op: ET.Element) -> bytes:
        self.pushed.append(op)
        return confirmation(200, "Received")


@contextmanager
def running_peer(accounts: dict[str, str], subscribers: set[str]) -> Iterator[Peer]:
    peer = Peer(accounts, subscribers)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            status, answer = peer.handle(self.rfile.read(length))
            self.send_response(status)
            self.send_header("Content-Type", "text/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    peer.url = f"http://127.0.0.1:{server.server_address[1]}/wctp"
    thread = threading.Thread(target=server.serve_forever, name="wctp-peer", daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()

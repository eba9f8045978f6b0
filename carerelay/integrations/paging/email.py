"""E-mail-to-pager: an SMTP listener (aiosmtpd) where mail to ``<number>@<pager domain>`` is a page.

RCPT is checked at once (a number that means nothing is a 550 there, and kept in the monitor), so
the sending mail server bounces it to its author instead of us dropping it. The page text is the
subject, then the plain-text body (HTML stripped when there is no plain part), quoted replies and
signatures left as they are. ``X-Priority: 1``/``2`` or ``Importance: high`` makes it STAT.
"""

from __future__ import annotations

import email
import email.policy
import html
import re
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from carerelay.integrations.paging.service import Page
from carerelay.integrations.paging.sink import Sink

MAX_DATA = 1024 * 1024


def _text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    content = part.get_content()
    if not isinstance(content, str):
        return ""
    if part.get_content_subtype() == "html":
        content = html.unescape(re.sub(r"<[^>]+>", " ", content))
    return re.sub(r"[ \t]+", " ", content).strip()


def _priority(message: EmailMessage) -> str | None:
    x_priority = (message.get("X-Priority") or "").strip()[:1]
    importance = (message.get("Importance") or "").strip().lower()
    return "stat" if x_priority in ("1", "2") or importance == "high" else None


class PagerMailHandler:
    def __init__(self, sink: Sink, *, domain: str, max_chars: int) -> None:
        self.sink = sink
        self.domain = domain.lower()
        self.max_chars = max_chars

    def _peer(self, session: Session) -> str | None:
        peer = session.peer
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else None

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        number, _, domain = address.rpartition("@")
        page = Page(channel="email", recipient_id=number or address, text="", sender_id=envelope.mail_from,
                    peer=self._peer(session), operation="RCPT")
        if domain.lower() != self.domain or not number:
            await self.sink.refuse(page, 403, f"{address} is not <number>@{self.domain}")
            return f"550 5.1.1 <{address}>: not a pager address here; write <number>@{self.domain}"
        if not await self.sink.known(number):
            await self.sink.refuse(page, 403, f"no pager number {number[:60]!r}")
            return f"550 5.1.1 <{address}>: no such pager number"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode()
        message: Any = email.message_from_bytes(raw, policy=email.policy.default)
        subject = str(message.get("Subject") or "").strip()
        body = _text_of(message)
        text = "\n".join(p for p in (subject, body) if p)
        refused: list[str] = []
        for address in envelope.rcpt_tos:
            number = address.rpartition("@")[0]
            page = Page(channel="email", recipient_id=number, text=text, sender_id=envelope.mail_from,
                        peer=self._peer(session), operation="DATA", priority=_priority(message), raw=raw)
            if not text:
                outcome = await self.sink.refuse(page, 400, "empty message: no subject and no text")
            elif len(text) > self.max_chars:
                outcome = await self.sink.refuse(page, 411, f"message of {len(text)} characters is over "
                                                            f"{self.max_chars}")
            else:
                outcome = await self.sink.page(page)
            if not outcome.accepted:
                refused.append(f"{number}: {outcome.text}")
        if refused:
            return f"554 5.6.0 not paged: {'; '.join(refused)}"[:500]
        return f"250 2.0.0 paged {len(envelope.rcpt_tos)}"


def smtp_protocol(handler: PagerMailHandler, *, hostname: str, timeout: float) -> SMTP:
    return SMTP(handler, data_size_limit=MAX_DATA, enable_SMTPUTF8=True, hostname=hostname,
                ident="carerelay e-mail-to-pager", timeout=timeout)

"""WCTP work outside any request, in each node's worker: push what originators are owed (the outbox),
and poll the carriers that do not push their StatusInfo / MessageReply to us.

Carrier polls acknowledge at the next poll what the previous one handed over and we committed; if
the node dies in between, the carrier hands it over again and applying it twice is harmless (an
answered alert stays answered; the trail notes the repeat).
"""

from __future__ import annotations

import logging
import time

from carerelay.config import Settings
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.integrations.wctp import outbox
from carerelay.integrations.wctp.client import Polled, WctpClient, WctpFailure
from carerelay.integrations.wctp.gateways import Gateway, gateways_from
from carerelay.integrations.wctp.service import apply_report
from carerelay.notifications import service as notifications

log = logging.getLogger("carerelay.wctp")


class WctpWorker:
    def __init__(self, settings: Settings, *, gateways: list[Gateway] | None = None) -> None:
        self.gateways = gateways if gateways is not None else gateways_from(settings)
        self._push = WctpClient("http://unused", sender_id=settings.wctp_responder,
                                timeout=settings.wctp_push_timeout_seconds, attempts=1)
        self._pollers = {g.name: WctpClient(g.url, sender_id=g.sender_id, security_code=g.security_code,
                                            timeout=g.timeout_seconds, attempts=1)
                         for g in self.gateways if g.poll_seconds > 0}
        self._acks: dict[str, list[int]] = {name: [] for name in self._pollers}
        self._next_poll: dict[str, float] = dict.fromkeys(self._pollers, 0.0)

    def run_once(self, db: Database, clock: Clock) -> int:
        done = outbox.push_due(db=db, clock=clock, post=lambda url, body: self._push.confirm(body, url=url))
        for gateway in self.gateways:
            if gateway.name in self._pollers and time.monotonic() >= self._next_poll[gateway.name]:
                self._next_poll[gateway.name] = time.monotonic() + gateway.poll_seconds
                done += self.poll_carrier(db, clock, gateway)
        return done

    def poll_carrier(self, db: Database, clock: Clock, gateway: Gateway) -> int:
        client = self._pollers.get(gateway.name) or WctpClient(gateway.url, sender_id=gateway.sender_id,
                                                               security_code=gateway.security_code, attempts=1)
        try:
            found = client.poll(acknowledge=self._acks.get(gateway.name, []))
        except WctpFailure as exc:
            log.warning("carrier poll failed", extra={"gateway": gateway.name, "error": str(exc)})
            return 0
        self._acks[gateway.name] = []
        for item in found:
            self._apply(db, clock, gateway, item)
            self._acks[gateway.name].append(item.sequence_no)
        return len(found)

    def _apply(self, db: Database, clock: Clock, gateway: Gateway, item: Polled) -> None:
        report = item.status or item.reply
        if report is None:
            log.warning("carrier sent something other than a report; ignored",
                        extra={"gateway": gateway.name, "sequence_no": item.sequence_no})
            return
        ref = report.header.response_to_message_id
        if not (ref.startswith("CR") and ref[2:].isdigit()):
            log.warning("carrier report about a message that is not ours", extra={"gateway": gateway.name, "ref": ref})
            return
        with db.unit_of_work() as session:
            delivery = notifications.find_delivery(session=session, delivery_id=int(ref[2:]))
            if delivery is None or delivery.channel != "pager":
                log.warning("carrier report for an unknown page", extra={"gateway": gateway.name, "ref": ref})
                return
            apply_report(session=session, clock=clock, delivery_id=delivery.id, report=report, gateway=gateway.name)

    def close(self) -> None:
        self._push.close()
        for client in self._pollers.values():
            client.close()

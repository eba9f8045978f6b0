"""Pages through an external paging carrier over WCTP (the outbound WCTP client, one per gateway).

The contact point's value is the pager id, or ``<id>@<gateway>``. The messageID we send is
``CR<delivery id>``, so the carrier's StatusInfo and MessageReply (pushed to our /wctp or polled)
find their way back to the delivery and its alert. A page about an alert offers its choices as an
MCR on two-way pagers; the holder's answer closes the loop like an answer in the app.
"""

from __future__ import annotations

from carerelay.config import Settings
from carerelay.core.clock import Clock, SystemClock
from carerelay.integrations.wctp.client import WctpClient, WctpFailure
from carerelay.integrations.wctp.gateways import Gateway, gateways_from, pick
from carerelay.notifications.channels import ChannelError, Outgoing

CHOICES = ("Accept", "Reject", "Call back")


class WctpPagerChannel:
    name = "pager"

    def __init__(self, gateways: list[Gateway], *, clock: Clock | None = None) -> None:
        self.gateways = gateways
        self.clock = clock or SystemClock()
        self._clients: dict[str, WctpClient] = {}

    def client(self, gateway: Gateway) -> WctpClient:
        """One client, and so one connection pool, per gateway URL."""
        found = self._clients.get(gateway.url)
        if found is None:
            found = WctpClient(gateway.url, sender_id=gateway.sender_id, security_code=gateway.security_code,
                               timeout=gateway.timeout_seconds, attempts=gateway.attempts,
                               backoff=gateway.backoff_seconds)
            self._clients[gateway.url] = found
        return found

    def send(self, outgoing: Outgoing) -> str | None:
        gateway, pager_id = pick(self.gateways, outgoing.address)
        if gateway is None:
            raise ChannelError(f"no WCTP gateway for pager {outgoing.address}", retryable=False)
        message_id = f"CR{outgoing.delivery_id}"
        text = f"{outgoing.subject}\n{outgoing.body}".strip()[:gateway.max_length]
        try:
            self.client(gateway).submit(recipient_id=pager_id, message_id=message_id, text=text, now=self.clock.now(),
                                        choices=CHOICES if outgoing.alert_id is not None else (),
                                        priority="HIGH", notify_delivered=True, notify_read=True)
        except WctpFailure as exc:
            raise ChannelError(f"gateway {gateway.name}: {exc.code} {exc.text}", retryable=exc.retryable) from exc
        return f"{gateway.name}:{message_id}"

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def pager_channel(settings: Settings) -> WctpPagerChannel | None:
    gateways = gateways_from(settings)
    return WctpPagerChannel(gateways) if gateways else None

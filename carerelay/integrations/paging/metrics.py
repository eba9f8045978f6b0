"""Prometheus metrics of nurse call and paging intake (on the shared registry served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter

from carerelay.ops.metrics import REGISTRY

PAGING_MESSAGES = Counter("carerelay_paging_messages_total",
                          "Inbound pages and device alerts, by channel (wctp, tap, snpp, email, web) and status",
                          ["channel", "status"], registry=REGISTRY)
WCTP_REPLIES = Counter("carerelay_wctp_replies_total", "StatusInfo / MessageReply to originators, by outcome",
                       ["delivery", "outcome"], registry=REGISTRY)

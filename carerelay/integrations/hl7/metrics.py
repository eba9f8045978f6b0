"""Prometheus metrics of the HL7 listener (on the shared registry served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from carerelay.ops.metrics import REGISTRY

HL7_RECEIVED = Counter("carerelay_hl7_messages_received_total", "HL7 messages answered, by feed and ACK code",
                       ["feed", "ack"], registry=REGISTRY)
HL7_PROCESSED = Counter("carerelay_hl7_messages_processed_total", "HL7 messages processed, by feed and status",
                        ["feed", "status"], registry=REGISTRY)
HL7_ACK_SECONDS = Histogram("carerelay_hl7_ack_seconds", "Frame complete to ACK written", ["feed"],
                            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0),
                            registry=REGISTRY)
HL7_CONNECTIONS = Gauge("carerelay_hl7_connections", "Open MLLP connections", ["feed"], registry=REGISTRY)
HL7_FEED_SILENT = Gauge("carerelay_hl7_feed_silent", "1 while a feed is past its silence threshold", ["feed"],
                        registry=REGISTRY)
HL7_BACKLOG = Gauge("carerelay_hl7_backlog", "Stored messages waiting to be processed (this node's view)",
                    registry=REGISTRY)

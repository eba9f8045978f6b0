"""Delivery channels behind one interface: each sends one delivery or raises ChannelError."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class ChannelError(Exception):
    """``retryable`` False for what a retry cannot fix (a number the gateway rejects as invalid)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Outgoing:
    delivery_id: int
    address: str
    subject: str
    body: str
    alert_id: int | None = None


class Channel(Protocol):
    name: str

    def send(self, outgoing: Outgoing) -> str | None:
        """Returns the provider's reference for the delivery, if it gives one."""

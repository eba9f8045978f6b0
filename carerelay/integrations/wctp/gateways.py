"""Outbound paging carriers (CARERELAY_WCTP_GATEWAYS): each a WCTP server we submit pages to.

A pager contact point's value is the pager id, optionally ``<id>@<gateway name>``; without a name it
goes through the gateway marked ``default`` (or the only one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from carerelay.config import ConfigError, Settings


class _GatewayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(pattern=r"^https?://")
    sender_id: str = Field(min_length=1, max_length=128)
    security_code: str | None = Field(default=None, max_length=128)
    default: bool = False
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    attempts: int = Field(default=3, ge=1, le=10)
    backoff_seconds: float = Field(default=0.5, ge=0, le=30)
    max_length: int = Field(default=240, ge=20, le=65535)
    poll_seconds: float = Field(default=0.0, ge=0, description="Poll the carrier for StatusInfo/MessageReply")
    inbound_security_code: str | None = Field(default=None, max_length=128)


@dataclass(frozen=True)
class Gateway:
    name: str
    url: str
    sender_id: str
    security_code: str | None = None
    default: bool = False
    timeout_seconds: float = 10.0
    attempts: int = 3
    backoff_seconds: float = 0.5
    max_length: int = 240
    poll_seconds: float = 0.0
    inbound_security_code: str | None = None


def gateways_from(settings: Settings) -> list[Gateway]:
    if not settings.wctp_gateways.strip():
        return []
    try:
        items = json.loads(settings.wctp_gateways)
        if not isinstance(items, list):
            raise ValueError("not a list")
        parsed = [Gateway(**_GatewayIn.model_validate(item).model_dump()) for item in items]
    except (ValueError, ValidationError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        where = ".".join(str(p) for p in first["loc"]) + ": " + first["msg"] if first else str(exc)
        raise ConfigError(f"invalid setting CARERELAY_WCTP_GATEWAYS: {where}") from None
    names = [g.name for g in parsed]
    if len(set(names)) != len(names):
        raise ConfigError("invalid setting CARERELAY_WCTP_GATEWAYS: gateway names must be unique")
    if sum(g.default for g in parsed) > 1:
        raise ConfigError("invalid setting CARERELAY_WCTP_GATEWAYS: only one gateway may be the default")
    return parsed


def pick(gateways: list[Gateway], address: str) -> tuple[Gateway | None, str]:
    """The gateway and pager id for a pager contact value (``5557001`` or ``5557001@spok``)."""
    pager_id, _, name = address.partition("@")
    if name:
        return next((g for g in gateways if g.name == name), None), pager_id
    chosen = next((g for g in gateways if g.default), gateways[0] if len(gateways) == 1 else None)
    return chosen, pager_id

"""Feeds: one listening port each, with its own charset, accepted types, ACK mode, allow-list, TLS
and silence threshold. The default feed comes from CARERELAY_MLLP_* / CARERELAY_HL7_*; more from
CARERELAY_HL7_FEEDS (a JSON list)."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from carerelay.config import ConfigError, Settings
from carerelay.core.errors import Invalid
from carerelay.integrations.hl7.parser import python_codec
from carerelay.patients.service import ORDERING, CriticalRule, HandoffRouting, ResultPolicy
from carerelay.routing.resolver import check_address

AckMode = Literal["receipt", "processed"]


@dataclass(frozen=True)
class Feed:
    name: str
    port: int
    host: str = "127.0.0.1"
    charset: str = "utf-8"
    message_types: tuple[str, ...] = ("ADT^*", "ORU^R01", "ORM^O01")
    ack_mode: AckMode = "receipt"
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    silence_minutes: int = 0
    tls_cert: str | None = None
    tls_key: str | None = None
    timezone: str = "UTC"
    provider_fields: tuple[str, ...] = ("npi", "unique_id", "ehr_username", "epic_ser_id")
    listen: bool = True  # False: known (its stored messages are processed) but no port is opened
    routing: HandoffRouting | None = None  # None: the global CARERELAY_HL7_*_TARGET settings
    extra: dict[str, str] = field(default_factory=dict)

    def accepts(self, message_type: str) -> bool:
        code, _, trigger = message_type.partition("^")
        for pattern in self.message_types:
            p_code, _, p_trigger = pattern.partition("^")
            if p_code == code and (p_trigger in ("", "*") or p_trigger == trigger):
                return True
        return False

    def allows(self, peer_ip: str | None) -> bool:
        if not self.allow:
            return True
        if peer_ip is None:
            return False
        try:
            address = ipaddress.ip_address(peer_ip)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in net for net in self.allow)


class _FeedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.\-]+$")
    port: int = Field(ge=0, le=65535)
    host: str | None = None
    encoding: str = "utf-8"
    message_types: list[str] = Field(default_factory=lambda: ["ADT^*", "ORU^R01", "ORM^O01"])
    ack_mode: AckMode = "receipt"
    allow: list[str] = Field(default_factory=list)
    silence_minutes: int = Field(default=0, ge=0)
    tls_cert: str | None = None
    tls_key: str | None = None
    timezone: str | None = None
    critical_target: str | None = None
    stat_target: str | None = None
    targets_by_code: dict[str, str] | None = None
    consult_orders: dict[str, str] | None = None

    @field_validator("encoding")
    @classmethod
    def _codec(cls, value: str) -> str:
        return python_codec(value)


def _networks(items: Sequence[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(i.strip(), strict=False) for i in items if i.strip())
    except ValueError as exc:
        raise ConfigError(f"invalid setting CARERELAY_MLLP_ALLOW / feed allow: {exc}") from None


def _check_zone(zone: str, setting: str) -> None:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"invalid setting {setting}: unknown time zone {zone!r}") from None


def _split(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def check_target(value: str, setting: str, hint: str = "ordering, careteam:<role>") -> str:
    """A hand-off target: ``ordering``, ``careteam:<role>`` (this patient's) or a routing address,
    or several of them separated by commas (fallbacks, tried in order)."""
    parts = [p.strip() for p in value.split(",")]
    if not value.strip() or not all(parts):
        raise ConfigError(f"invalid setting {setting}: empty target in {value!r}")
    for part in parts:
        if part == ORDERING:
            continue
        scheme, _, ref = part.partition(":")
        if scheme == "careteam" and ref and "/" not in ref:
            continue
        try:
            check_address(part)
        except Invalid as exc:
            raise ConfigError(f"invalid setting {setting}: {part!r}: {exc.message} (or use {hint})") from None
    return ",".join(parts)


def _code_map(value: str | dict[str, str], setting: str) -> dict[str, str]:
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigError(f"invalid setting {setting}: not JSON ({exc})") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(f"invalid setting {setting}: must be a JSON object of code -> target")
    return {code.strip(): check_target(target, f"{setting} ({code})") for code, target in value.items()}


def routing_from(settings: Settings) -> HandoffRouting:
    """The global targets of critical results, STAT orders and consult orders."""
    return HandoffRouting(
        critical_result=check_target(settings.hl7_critical_target, "CARERELAY_HL7_CRITICAL_TARGET"),
        stat_order=check_target(settings.hl7_stat_target, "CARERELAY_HL7_STAT_TARGET"),
        by_code=_code_map(settings.hl7_targets_by_code, "CARERELAY_HL7_TARGETS_BY_CODE"),
        consult_orders=_code_map(settings.hl7_consult_orders, "CARERELAY_HL7_CONSULT_ORDERS"))


def _feed_routing(f: _FeedIn, base: HandoffRouting) -> HandoffRouting | None:
    """A feed's own targets over the global ones; None when the feed sets none."""
    if f.critical_target is None and f.stat_target is None and f.targets_by_code is None \
            and f.consult_orders is None:
        return None
    where = f"CARERELAY_HL7_FEEDS ({f.name})"
    return HandoffRouting(
        critical_result=check_target(f.critical_target, where) if f.critical_target is not None
        else base.critical_result,
        stat_order=check_target(f.stat_target, where) if f.stat_target is not None else base.stat_order,
        by_code=_code_map(f.targets_by_code, where) if f.targets_by_code is not None else base.by_code,
        consult_orders=_code_map(f.consult_orders, where) if f.consult_orders is not None else base.consult_orders)


def feeds_from(settings: Settings) -> list[Feed]:
    """Every configured feed; the default one first (``port`` 0 means it does not listen)."""
    provider_fields = _split(settings.hl7_provider_id_fields)
    base_routing = routing_from(settings)
    try:
        charset = python_codec(settings.hl7_encoding)
    except ValueError as exc:
        raise ConfigError(f"invalid setting CARERELAY_HL7_ENCODING: {exc}") from None
    feeds = [Feed(
        name="default", port=settings.mllp_port, host=settings.mllp_host, charset=charset,
        message_types=_split(settings.hl7_message_types), ack_mode=settings.hl7_ack_mode,
        allow=_networks(settings.mllp_allow.split(",")), silence_minutes=settings.hl7_silence_minutes,
        tls_cert=settings.mllp_tls_cert or None, tls_key=settings.mllp_tls_key or None,
        timezone=settings.hl7_timezone, provider_fields=provider_fields, listen=settings.mllp_port != 0,
    )]
    for zone, name in [(settings.hl7_timezone, "CARERELAY_HL7_TIMEZONE")]:
        _check_zone(zone, name)
    if settings.hl7_feeds.strip():
        try:
            items = json.loads(settings.hl7_feeds)
            if not isinstance(items, list):
                raise ValueError("must be a JSON list of feed objects")
            parsed = [_FeedIn.model_validate(i) for i in items]
        except (ValueError, ValidationError) as exc:
            first = str(exc).splitlines()[0] if not isinstance(exc, ValidationError) else (
                f"{'.'.join(str(p) for p in exc.errors()[0]['loc'])}: {exc.errors()[0]['msg']}")
            raise ConfigError(f"invalid setting CARERELAY_HL7_FEEDS: {first}") from None
        for f in parsed:
            if f.timezone:
                _check_zone(f.timezone, "CARERELAY_HL7_FEEDS")
            if any(existing.name == f.name for existing in feeds):
                raise ConfigError(f"invalid setting CARERELAY_HL7_FEEDS: feed name {f.name!r} used twice")
            feeds.append(Feed(
                name=f.name, port=f.port, host=f.host or settings.mllp_host, charset=f.encoding,
                message_types=tuple(f.message_types), ack_mode=f.ack_mode, allow=_networks(f.allow),
                silence_minutes=f.silence_minutes, tls_cert=f.tls_cert, tls_key=f.tls_key,
                timezone=f.timezone or settings.hl7_timezone, provider_fields=provider_fields,
                listen=f.port != 0, routing=_feed_routing(f, base_routing)))
    return feeds


def result_policy(settings: Settings) -> ResultPolicy:
    rules: list[CriticalRule] = []
    if settings.hl7_critical_rules.strip():
        try:
            for item in json.loads(settings.hl7_critical_rules):
                rules.append(CriticalRule(code=str(item["code"]), below=item.get("below"), above=item.get("above")))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"invalid setting CARERELAY_HL7_CRITICAL_RULES: {exc}") from None
    return ResultPolicy(critical_flags=frozenset(f.upper() for f in _split(settings.hl7_critical_flags)),
                        rules=tuple(rules), provider_fields=_split(settings.hl7_provider_id_fields),
                        routing=routing_from(settings))

"""All configuration in one place.

Every setting is read from a ``CARERELAY_*`` environment variable or from the file named by
``CARERELAY_ENV_FILE`` (default ``./carerelay.env``). ``carerelay.env.example`` documents each one.
A wrong value stops start-up with a single line naming the variable, because an operator reading
a service log at 3 a.m. needs the culprit, not a traceback.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CARERELAY_",
        env_file=os.environ.get("CARERELAY_ENV_FILE", "carerelay.env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    database_url: str = Field(
        default="sqlite:///var/carerelay.db",
        description="SQLAlchemy URL. SQLite (embedded, default) or postgresql://user@host/db.",
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL",
        description="FULL survives power loss after every commit; NORMAL only a process crash.",
    )
    db_idle_transaction_seconds: float = Field(
        default=60.0, ge=0, le=3600,
        description="PostgreSQL, carerelay serve: the database ends a node's transaction idle this long, so "
                    "what a hung or cut-off node had claimed (escalation timers) passes to the others; 0: never.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str = "http://127.0.0.1:8000"
    organization_name: str = "Demo Health System"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    metrics_token: str | None = Field(
        default=None, description="Bearer token a scraper must present at /metrics; unset: /metrics is open.")

    session_idle_minutes: int = Field(default=12 * 60, ge=1, description="Sign-in session idle timeout.")
    session_max_hours: int = Field(default=7 * 24, ge=1)
    shared_device_idle_minutes: int = Field(
        default=15, ge=1, description="Idle timeout on shared unit devices (default of the organization's policy).")
    pin_lock_minutes: int = Field(
        default=10, ge=1, description="Idle minutes before a PIN is needed (default of the organization's policy).")
    cookie_secure: bool = Field(default=False, description="Set true behind HTTPS.")
    login_backoff_after: int = Field(default=3, ge=1, description="Failed sign-ins before back-off.")
    login_lockout_after: int = Field(default=10, ge=2, description="Failed sign-ins before lock-out.")
    login_lockout_minutes: int = Field(default=15, ge=1)
    password_min_length: int = Field(default=10, ge=8)

    provisioning_default_profession: Literal[
        "physician", "app", "resident", "nurse", "tech", "operator", "scheduler", "admin", "compliance"
    ] = Field(default="tech", description="Profession of a person SCIM/LDAP/SSO creates when none is given.")

    ldap_url: str = Field(default="", description="ldap:// or ldaps:// URL of the directory; empty: no LDAP sync.")
    ldap_bind_dn: str = ""
    ldap_bind_password: str = ""
    ldap_start_tls: bool = False
    ldap_base_dn: str = ""
    ldap_user_filter: str = "(&(objectCategory=person)(objectClass=user))"
    ldap_attributes: str = Field(
        default="username=sAMAccountName,email=mail,phone=telephoneNumber,department=department,"
        "employee_id=employeeID,given_name=givenName,family_name=sn,title=title,groups=memberOf",
        description="Our field=LDAP attribute, comma separated.",
    )
    ldap_employee_id_field: Literal[
        "unique_id", "custom1", "custom2", "custom3", "custom4", "ehr_username", "npi", "epic_ser_id", "ms_upn",
        "kronos_id",
    ] = "unique_id"
    ldap_incremental: Literal["modifyTimestamp", "uSNChanged", "entryCSN", "off"] = "modifyTimestamp"
    ldap_page_size: int = Field(default=500, ge=1, le=5000)
    ldap_deactivate_missing: bool = True
    ldap_timeout_seconds: float = Field(default=15.0, gt=0)

    sso_providers_file: str = Field(default="", description="JSON file listing OIDC and SAML identity providers.")
    sso_state_minutes: int = Field(default=10, ge=1, le=60, description="How long a started SSO sign-in stays valid.")

    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    run_timers: bool = Field(default=True, description="Fire escalation timers in this process.")
    timer_threads: int = Field(default=2, ge=1, le=8, description="PostgreSQL: threads of this node firing "
                               "due timers side by side (SKIP LOCKED keeps them apart, as it keeps nodes "
                               "apart); SQLite always uses one.")
    schedule_sync: bool = Field(default=True, description="Pull due third-party schedules (Amion, QGenda, "
                                "ShiftAdmin; every 15 min per source) in this process's worker.")
    auditor_interval_seconds: float = Field(default=60.0, ge=5, le=3600,
                                            description="How often the escalation auditor checks.")
    auditor_max_timer_lag_seconds: float = Field(default=30.0, gt=0, le=3600,
                                                 description="A timer firing later than this is a finding.")
    auditor_shift_horizon_hours: float = Field(default=12.0, ge=0, le=72,
                                               description="Check contact points of shifts starting within.")

    sms_gateway_url: str | None = Field(default=None, description="HTTP endpoint that sends SMS.")
    sms_gateway_token: str | None = None
    smtp_host: str | None = Field(default=None, description="Mail server for e-mail notifications.")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "carerelay@localhost"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = None

    attachment_keys: str | None = Field(
        default=None,
        description="Attachment key ring 'id:base64key,…' (first is active). Required with several nodes.",
    )
    attachment_key_file: str = Field(
        default="var/attachment-keys.json", description="Key ring created on first use when no keys are set."
    )

    @field_validator("attachment_keys")
    @classmethod
    def _key_ring(cls, value: str | None) -> str | None:
        if value:
            from carerelay.core.crypto import KeyRing

            try:
                KeyRing.parse(value)
            except ValueError as exc:
                raise ValueError(f"not a key ring ({exc})") from None
        return value

    # HL7 v2 over MLLP (integrations/hl7). The default feed listens on mllp_port; more feeds in hl7_feeds.
    mllp_host: str = Field(default="127.0.0.1", description="Address the MLLP listeners bind.")
    mllp_port: int = Field(default=2575, ge=0, le=65535, description="Default feed's MLLP port; 0 disables it.")
    mllp_max_message_bytes: int = Field(default=16 * 1024 * 1024, ge=65536, description="Largest MLLP frame.")
    mllp_idle_timeout_seconds: float = Field(default=300.0, gt=0, description="Close a silent connection after.")
    mllp_max_connections: int = Field(default=1000, ge=1, description="Concurrent MLLP connections, all feeds.")
    mllp_tls_cert: str | None = Field(default=None, description="PEM certificate: the default feed speaks TLS.")
    mllp_tls_key: str | None = Field(default=None, description="PEM private key for mllp_tls_cert.")
    mllp_allow: str = Field(default="", description="Default feed IP allow-list: comma-separated CIDRs; empty=any.")
    hl7_encoding: str = Field(default="utf-8", description="Default feed's charset when MSH-18 is empty.")
    hl7_ack_mode: Literal["receipt", "processed"] = Field(default="receipt")
    hl7_message_types: str = Field(default="ADT^*,ORU^R01,ORM^O01",
                                   description="Default feed: accepted MSH-9 types (comma-separated, ^* wildcard).")
    hl7_silence_minutes: int = Field(default=0, ge=0, description="Default feed silence threshold; 0 = none.")
    hl7_timezone: str = Field(default="UTC", description="Zone of HL7 timestamps that carry no offset.")
    hl7_feeds: str = Field(default="", description="More feeds: a JSON list of objects (see docs/subsystems/hl7.md).")
    hl7_critical_flags: str = Field(default="HH,LL,AA", description="OBX-8 flags that make a result critical.")
    hl7_critical_rules: str = Field(default="", description="JSON list of {code, below, above} critical rules.")
    hl7_stat_priorities: str = Field(default="S,STAT", description="Order priorities that mean STAT.")
    hl7_provider_id_fields: str = Field(default="npi,unique_id,ehr_username,epic_ser_id",
                                        description="Directory id fields tried, in order, for an XCN id.")
    hl7_critical_target: str = Field(default="ordering", description="Who hears of a critical result: ordering, "
                                     "careteam:<role> or an address; commas list fallbacks.")
    hl7_stat_target: str = Field(default="ordering", description="Who hears of a STAT order (same forms).")
    hl7_targets_by_code: str = Field(default="", description="JSON object: test or order code -> target.")
    hl7_consult_orders: str = Field(default="", description="JSON object: consult order code -> target.")
    hl7_presenting_rules_file: str = Field(default="", description="TOML file of presenting-patient rules.")

    # WCTP (integrations/wctp): the server at POST /wctp, replies to originators, outbound carriers.
    wctp_max_bytes: int = Field(default=1024 * 1024, ge=4096, description="Largest WCTP request body accepted.")
    wctp_responder: str = Field(default="carerelay", description="Our name in VersionResponse and replies.")
    wctp_poll_interval_seconds: int = Field(default=5, ge=1, description="minNextPollInterval told to pollers.")
    wctp_push_timeout_seconds: float = Field(default=10.0, gt=0, description="Pushing a reply to an originator.")
    wctp_gateways: str = Field(default="", description="Outbound paging carriers, a JSON list (see wctp.md).")
    # Paging listeners (integrations/paging): TAP and SNPP over TCP, e-mail-to-pager over SMTP. 0 disables one.
    paging_host: str = Field(default="127.0.0.1", description="Address the TAP, SNPP and SMTP listeners bind.")
    tap_port: int = Field(default=6001, ge=0, le=65535, description="TAP (Telocator Alphanumeric Protocol) port.")
    tap_password: str | None = Field(default=None, description="TAP logon password required (empty: none).")
    snpp_port: int = Field(default=4444, ge=0, le=65535, description="SNPP (RFC 1861) port.")
    snpp_require_login: bool = Field(default=False, description="SNPP: refuse pages before a valid LOGIn.")
    pager_smtp_port: int = Field(default=2525, ge=0, le=65535, description="E-mail-to-pager SMTP port.")
    pager_email_domain: str = Field(default="pager.localhost", description="Mail to <number>@<this> is a page.")
    paging_allow: str = Field(default="", description="IP allow-list of the paging listeners (CIDRs); empty=any.")
    paging_idle_timeout_seconds: float = Field(default=120.0, gt=0, description="Close a silent TAP/SNPP link.")
    paging_max_connections: int = Field(default=200, ge=1, description="Concurrent TAP + SNPP + SMTP connections.")
    paging_max_message_chars: int = Field(default=2000, ge=80, description="Longest TAP/SNPP/e-mail page text.")

    # Web client (carerelay/web, docs/subsystems/web.md): embedded EHR launch, Epic deep links.
    embed_launch_key: str = Field(
        default="", description="HMAC-SHA256 key the EHR signs /embed launch tokens with; empty: embedded mode off.")
    embed_token_max_seconds: int = Field(default=300, ge=30, le=3600,
                                         description="Longest lifetime (exp - now) a launch token may claim.")
    epic_haiku_url: str = Field(default="", description="Epic Haiku deep link template ({epic_patient_id}, {mrn}).")
    epic_canto_url: str = Field(default="", description="Epic Canto deep link template.")
    epic_rover_url: str = Field(default="", description="Epic Rover deep link template.")
    # Tests only: a live server whose "now" a test moves by rewriting a file. Refused outside environment=test.
    environment: Literal["production", "test"] = Field(
        default="production", description="'test' only in automated test runs; enables test-only settings.")
    test_clock_file: str = Field(default="", description="TESTS ONLY: file holding the server's current instant.")

    @field_validator("embed_launch_key")
    @classmethod
    def _launch_key(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError("must be at least 32 characters (e.g. openssl rand -hex 32)")
        return value

    @field_validator("epic_haiku_url", "epic_canto_url", "epic_rover_url")
    @classmethod
    def _deep_link(cls, value: str) -> str:
        if value:
            from carerelay.web.deeplinks import check_template

            check_template(value)
        return value

    @field_validator("test_clock_file")
    @classmethod
    def _test_clock(cls, value: str, info: ValidationInfo) -> str:
        if value and info.data.get("environment") != "test":
            raise ValueError("is for automated tests only and is refused unless CARERELAY_ENVIRONMENT=test")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        scheme = value.split(":", 1)[0]
        if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            raise ValueError("must start with sqlite:// or postgresql://")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        path = self.database_url.split(":///", 1)[-1]
        return None if path in ("", ":memory:") else Path(path)


class ConfigError(Exception):
    """A setting is wrong; the message is one line naming it."""


def _one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else "?"
    return f"invalid setting CARERELAY_{field.upper()}: {err['msg']}"


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()

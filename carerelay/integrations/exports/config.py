"""What an administrator configures on a connector: trigger and transport, checked before they are stored.

Strict shapes (unknown fields refused, naming the field) because a typo in an export setting would
otherwise surface at 3 a.m. as a file that silently went nowhere.
"""

from __future__ import annotations

from datetime import date, time
from typing import Annotated, Literal

from pydantic import Field, field_validator

from carerelay.core.schemas import Input
from carerelay.directory.models import EXTERNAL_ID_FIELDS

PERSON_KEYS = ("username", *EXTERNAL_ID_FIELDS)
"""Directory fields a connector may use as the person's id on the other side."""


class OnPublish(Input):
    """Runs when a schedule in scope is published (or withdrawn)."""

    kind: Literal["on_publish"]


class OnChange(Input):
    """Runs on every change to a published schedule in scope (publish, slot edits, swaps)."""

    kind: Literal["on_change"]


class Interval(Input):
    kind: Literal["interval"]
    minutes: int = Field(ge=1, le=1440)


class Daily(Input):
    """Once a day at a local time in the connector's zone."""

    kind: Literal["daily"]
    at: time


class PayPeriod(Input):
    """Daily at ``at`` within pay periods of ``length_days`` counted from ``anchor`` (a period's first day)."""

    kind: Literal["pay_period"]
    anchor: date
    length_days: int = Field(default=14, ge=1, le=31)
    at: time = time(1, 0)


Trigger = Annotated[OnPublish | OnChange | Interval | Daily | PayPeriod, Field(discriminator="kind")]
CHANGE_TRIGGERS = ("on_publish", "on_change")


def _relative_path(value: str) -> str:
    if "\x00" in value or "\n" in value:
        raise ValueError("must be a plain path")
    return value


class SftpTransport(Input):
    """A file put on an SFTP server (written as ``name.part``, then renamed, so nobody reads half a file)."""

    kind: Literal["sftp"]
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(default=22, ge=1, le=65535)
    username: str = Field(min_length=1, max_length=120)
    path: str = Field(default=".", max_length=500, description="Remote directory")
    secret_env: str | None = Field(default=None, max_length=100,
                                   description="Environment variable holding the password")
    key_file: str | None = Field(default=None, max_length=500, description="Private key file (instead of a password)")
    known_hosts: str = Field(max_length=500, description="known_hosts file with the server's host key (required)")
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    @field_validator("path")
    @classmethod
    def _plain_path(cls, value: str) -> str:
        return _relative_path(value)


class FolderTransport(Input):
    """A file written to a local (or mounted) folder: for demos, downtime PCs and file shares."""

    kind: Literal["folder"]
    path: str = Field(min_length=1, max_length=500)


class HttpTransport(Input):
    """An HTTP API. ``secret_env`` names the variable with the API key, password or client secret."""

    kind: Literal["http"]
    base_url: str = Field(min_length=1, max_length=500, pattern=r"^https?://")
    token_url: str | None = Field(default=None, max_length=500, pattern=r"^https?://",
                                  description="OAuth 2.0 token endpoint (client credentials)")
    client_id: str | None = Field(default=None, max_length=200)
    username: str | None = Field(default=None, max_length=200, description="Background user signing in")
    secret_env: str | None = Field(default=None, max_length=100)
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)


Transport = Annotated[SftpTransport | FolderTransport | HttpTransport, Field(discriminator="kind")]
FILE_TRANSPORTS = ("sftp", "folder")

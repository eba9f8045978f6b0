"""API shapes for sign-in and sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from carerelay.core.schemas import Input, Output

Secret = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class SignInIn(Input):
    username: Annotated[str, StringConstraints(min_length=1, max_length=120)]
    password: Secret
    totp_code: Annotated[str, StringConstraints(pattern=r"^\d{6}$")] | None = None
    kind: Literal["web", "api"] = "web"


class SignInOut(Output):
    token: str = Field(description="Send as 'Authorization: Bearer <token>'; the web also gets a cookie.")
    session_id: int
    person_id: int
    username: str
    display_name: str
    roles: list[str]
    expires_at: datetime


class MeOut(Output):
    person_id: int
    username: str
    display_name: str
    roles: list[str]
    session_id: int


class SessionOut(Output):
    id: int
    kind: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool = False


class ChangePasswordIn(Input):
    current_password: Secret
    new_password: Secret


class ResetPasswordIn(Input):
    person_id: int = Field(strict=True)
    new_password: Secret


class SessionsEnded(Output):
    sessions_ended: int


class TotpBeginOut(Output):
    provisioning_uri: str


class TotpConfirmIn(Input):
    code: Annotated[str, StringConstraints(pattern=r"^\d{6}$")]


class SharedDeviceSignInIn(Input):
    device: Annotated[str, StringConstraints(min_length=1, max_length=120)] = Field(
        description="The shared device's identifier as registered in the directory.")
    username: Annotated[str, StringConstraints(min_length=1, max_length=120)]
    password: Secret
    totp_code: Annotated[str, StringConstraints(pattern=r"^\d{6}$")] | None = None


class PinIn(Input):
    pin: Annotated[str, StringConstraints(min_length=4, max_length=8, pattern=r"^\d+$")]


Minutes = Annotated[int, Field(strict=True, ge=1, le=24 * 60)]


class AuthPolicyOut(Output):
    shared_device_idle_minutes: int = Field(description="A shared unit device's session ends after this idle time.")
    pin_lock_minutes: int = Field(description="A personal session with a PIN locks after this idle time.")
    from_settings: list[str] = Field(description="Fields the organization left empty: the node's setting applies.")


class AuthPolicyPatch(Input):
    """Send a field as null to hand it back to the node's CARERELAY_* setting."""

    shared_device_idle_minutes: Minutes | None = None
    pin_lock_minutes: Minutes | None = None

"""Sign-in, sessions, passwords and the second factor, over HTTP."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from carerelay.auth import devices, service
from carerelay.auth import policy as auth_policy
from carerelay.auth.deps import (
    SESSION_COOKIE,
    ClockDep,
    DbSession,
    SettingsDep,
    allow,
    client_ip,
    presented_token,
    public,
    signed_in,
)
from carerelay.auth.schemas import (
    AuthPolicyOut,
    AuthPolicyPatch,
    ChangePasswordIn,
    MeOut,
    PinIn,
    ResetPasswordIn,
    SessionOut,
    SessionsEnded,
    SharedDeviceSignInIn,
    SignInIn,
    SignInOut,
    TotpBeginOut,
    TotpConfirmIn,
)
from carerelay.core.actor import Actor
from carerelay.core.schemas import ErrorBody
from carerelay.directory import service as directory
from carerelay.directory.models import Role

THROTTLED: dict[int | str, dict[str, Any]] = {429: {
    "description": "Too many failed attempts: wait the Retry-After seconds", "model": ErrorBody}}

router = APIRouter(prefix="/api/auth", tags=["auth"])


def set_session_cookie(response: Response, token: str, secure: bool, max_age: int) -> None:
    response.set_cookie(SESSION_COOKIE, token, httponly=True, secure=secure, samesite="strict", max_age=max_age,
                        path="/")


@router.post("/sign-in", response_model=SignInOut, responses=THROTTLED)
def sign_in(
    body: SignInIn, request: Request, response: Response, session: DbSession, clock: ClockDep,
    settings: SettingsDep, actor: Actor = public(),
) -> SignInOut:
    result = service.sign_in(
        session=session, clock=clock, settings=settings, username=body.username, password=body.password,
        totp_code=body.totp_code, kind=body.kind, ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )
    if body.kind == "web":
        set_session_cookie(response, result.token, settings.cookie_secure, settings.session_max_hours * 3600)
    return SignInOut(token=result.token, session_id=result.session.id, person_id=result.person.id,
                     username=result.person.username, display_name=result.person.display_name,
                     roles=sorted(result.person.role_names), expires_at=result.session.expires_at)


@router.post("/sign-out", status_code=status.HTTP_204_NO_CONTENT)
def sign_out(response: Response, session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> Response:
    service.sign_out(session=session, clock=clock, actor=actor)
    response.status_code = status.HTTP_204_NO_CONTENT
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me", response_model=MeOut)
def me(session: DbSession, actor: Actor = signed_in()) -> MeOut:
    assert actor.person_id is not None and actor.session_id is not None
    person = directory.get_person(session=session, person_id=actor.person_id)
    return MeOut(person_id=person.id, username=person.username, display_name=person.display_name,
                 roles=sorted(person.role_names), session_id=actor.session_id)


@router.get("/sessions", response_model=list[SessionOut])
def my_sessions(session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> list[SessionOut]:
    assert actor.person_id is not None
    rows = service.list_sessions(session=session, clock=clock, person_id=actor.person_id)
    return [SessionOut.model_validate(r).model_copy(update={"current": r.id == actor.session_id}) for r in rows]


@router.get("/people/{person_id}/sessions", response_model=list[SessionOut])
def person_sessions(
    person_id: int, session: DbSession, clock: ClockDep, actor: Actor = allow(Role.SYSTEM_ADMIN)
) -> list[SessionOut]:
    directory.get_person(session=session, person_id=person_id)
    return [SessionOut.model_validate(r) for r in service.list_sessions(session=session, clock=clock,
                                                                        person_id=person_id)]


@router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_session(session_id: int, session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> Response:
    service.revoke_session(session=session, clock=clock, actor=actor, session_id=session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/password", response_model=SessionsEnded, responses=THROTTLED)
def change_password(
    body: ChangePasswordIn, response: Response, session: DbSession, clock: ClockDep, settings: SettingsDep,
    actor: Actor = signed_in(),
) -> SessionsEnded:
    ended = service.change_password(session=session, clock=clock, settings=settings, actor=actor,
                                    current=body.current_password, new=body.new_password)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return SessionsEnded(sessions_ended=ended)


@router.post("/reset-password", response_model=SessionsEnded)
def reset_password(
    body: ResetPasswordIn, session: DbSession, clock: ClockDep, settings: SettingsDep,
    actor: Actor = allow(Role.SYSTEM_ADMIN),
) -> SessionsEnded:
    ended = service.reset_password(session=session, clock=clock, settings=settings, actor=actor,
                                   person_id=body.person_id, new=body.new_password)
    return SessionsEnded(sessions_ended=ended)


@router.post("/totp/begin", response_model=TotpBeginOut)
def totp_begin(session: DbSession, clock: ClockDep, settings: SettingsDep, actor: Actor = signed_in()) -> TotpBeginOut:
    uri = service.begin_totp_enrollment(session=session, clock=clock, actor=actor, issuer=settings.organization_name)
    return TotpBeginOut(provisioning_uri=uri)


@router.post("/totp/confirm", status_code=status.HTTP_204_NO_CONTENT)
def totp_confirm(body: TotpConfirmIn, session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> Response:
    service.confirm_totp(session=session, clock=clock, actor=actor, code=body.code)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/shared-device/sign-in", response_model=SignInOut, responses=THROTTLED)
def shared_device_sign_in(
    body: SharedDeviceSignInIn, request: Request, session: DbSession, clock: ClockDep, settings: SettingsDep,
    actor: Actor = public(),
) -> SignInOut:
    """Sign in on a shared unit device; whoever was signed in on it is signed out."""
    result = devices.sign_in_on_shared_device(
        session=session, clock=clock, settings=settings, device_identifier=body.device, username=body.username,
        password=body.password, totp_code=body.totp_code, ip=client_ip(request),
        user_agent=request.headers.get("user-agent"))
    return SignInOut(token=result.token, session_id=result.session.id, person_id=result.person.id,
                     username=result.person.username, display_name=result.person.display_name,
                     roles=sorted(result.person.role_names), expires_at=result.session.expires_at)


@router.put("/pin", status_code=status.HTTP_204_NO_CONTENT)
def set_pin(body: PinIn, session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> Response:
    devices.set_pin(session=session, clock=clock, actor=actor, pin=body.pin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/lock", status_code=status.HTTP_204_NO_CONTENT)
def lock(session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> Response:
    devices.lock_session(session=session, clock=clock, actor=actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/unlock", status_code=status.HTTP_204_NO_CONTENT, responses=THROTTLED)
def unlock(body: PinIn, request: Request, session: DbSession, clock: ClockDep, settings: SettingsDep,
           actor: Actor = public()) -> Response:
    """Public because a locked session is not signed in; the session token plus the PIN is the proof."""
    token = presented_token(request)
    if not token:
        from carerelay.core.errors import Unauthenticated

        raise Unauthenticated("send the locked session's token (bearer or cookie) with the PIN")
    devices.unlock_session(session=session, clock=clock, settings=settings, token=token, pin=body.pin,
                           ip=client_ip(request))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/policy", response_model=AuthPolicyOut)
def get_policy(session: DbSession, settings: SettingsDep, actor: Actor = signed_in()) -> AuthPolicyOut:
    """The organization's session limits in force (a shared device's idle timeout, the PIN lock)."""
    limits = auth_policy.session_limits(session=session, settings=settings)
    return AuthPolicyOut(shared_device_idle_minutes=limits.shared_device_idle_minutes,
                         pin_lock_minutes=limits.pin_lock_minutes, from_settings=list(limits.from_settings))


@router.patch("/policy", response_model=AuthPolicyOut)
def update_policy(body: AuthPolicyPatch, session: DbSession, clock: ClockDep, settings: SettingsDep,
                  actor: Actor = allow(Role.SYSTEM_ADMIN)) -> AuthPolicyOut:
    limits = auth_policy.update_session_limits(session=session, clock=clock, settings=settings, actor=actor,
                                               changes=body.model_dump(exclude_unset=True))
    return AuthPolicyOut(shared_device_idle_minutes=limits.shared_device_idle_minutes,
                         pin_lock_minutes=limits.pin_lock_minutes, from_settings=list(limits.from_settings))

"""SSO over HTTP: redirects to the identity provider, the callbacks, back-channel logout, SP metadata.

These routes are public by nature (the person is not signed in yet); what authenticates them is the
identity provider's signature on what it sends, checked in the service. The SAML routes import
``saml`` when they are called: pysaml2 takes a second to import, which a node without a SAML provider
(and every CLI command) should not pay at each start.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from carerelay.auth.api import set_session_cookie
from carerelay.auth.deps import ClockDep, DbSession, SettingsDep, client_ip, public
from carerelay.auth.service import SignedIn
from carerelay.core.actor import Actor
from carerelay.core.errors import CarerelayError, NotFound
from carerelay.integrations.sso import service
from carerelay.integrations.sso.config import Provider, get_provider
from carerelay.web.pages import templates

router = APIRouter(prefix="/sso", include_in_schema=False)


def _providers(request: Request) -> dict[str, Provider]:
    providers: dict[str, Provider] = request.app.state.sso_providers
    return providers


def _callback_url(settings_public_url: str, provider: Provider) -> str:
    return f"{settings_public_url.rstrip('/')}/sso/oidc/{provider.name}/callback"


def _refused(request: Request, org: str, provider: str, message: str, status: int = 401) -> Response:
    return templates.TemplateResponse(request, "sso_error.html", {"org": org, "provider": provider,
                                                                  "message": message}, status_code=status)


def _signed_in(request: Request, org: str, result: SignedIn, secure: bool, max_age: int) -> Response:
    # A page, not a redirect: the SameSite=Strict cookie is then sent on the same-site hop to /home.
    response = templates.TemplateResponse(request, "sso_done.html", {"org": org, "person": result.person})
    set_session_cookie(response, result.token, secure, max_age)
    return response


@router.get("/oidc/{name}/login")
def oidc_login(name: str, request: Request, session: DbSession, clock: ClockDep, settings: SettingsDep,
               actor: Actor = public()) -> Response:
    try:
        provider = get_provider(_providers(request), name, "oidc")
        url = service.begin_oidc_login(session=session, clock=clock, settings=settings, provider=provider,
                                       redirect_uri=_callback_url(settings.public_url, provider))
    except CarerelayError as exc:
        return _refused(request, settings.organization_name, name, exc.message,
                        404 if isinstance(exc, NotFound) else 502)
    return RedirectResponse(url, status_code=303)


@router.get("/oidc/{name}/callback")
def oidc_callback(name: str, request: Request, session: DbSession, clock: ClockDep, settings: SettingsDep,
                  actor: Actor = public()) -> Response:
    try:
        provider = get_provider(_providers(request), name, "oidc")
        result = service.finish_oidc_login(
            session=session, clock=clock, settings=settings, provider=provider,
            redirect_uri=_callback_url(settings.public_url, provider), params=dict(request.query_params),
            ip=client_ip(request), user_agent=request.headers.get("user-agent"))
    except CarerelayError as exc:
        # Returning normally commits the refusal's audit entry and the consumed state: facts to keep.
        return _refused(request, settings.organization_name, name, exc.message,
                        404 if isinstance(exc, NotFound) else 401)
    return _signed_in(request, settings.organization_name, result, settings.cookie_secure,
                      settings.session_max_hours * 3600)


@router.post("/oidc/{name}/backchannel-logout")
def oidc_backchannel_logout(
    name: str, request: Request, session: DbSession, clock: ClockDep,
    logout_token: Annotated[str, Form(max_length=20000)], actor: Actor = public(),
) -> Response:
    try:
        provider = get_provider(_providers(request), name, "oidc")
        service.backchannel_logout(session=session, clock=clock, provider=provider, logout_token=logout_token,
                                   ip=client_ip(request))
    except CarerelayError as exc:
        return JSONResponse({"error": "invalid_request", "error_description": exc.message}, status_code=400,
                            headers={"Cache-Control": "no-store"})
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


@router.get("/saml/{name}/metadata")
def saml_metadata(name: str, request: Request, settings: SettingsDep, actor: Actor = public()) -> Response:
    from carerelay.integrations.sso import saml

    try:
        provider = get_provider(_providers(request), name, "saml")
    except NotFound as exc:
        return _refused(request, settings.organization_name, name, exc.message, 404)
    return Response(saml.metadata(settings.public_url, provider), media_type="application/samlmetadata+xml")


@router.get("/saml/{name}/login")
def saml_login(name: str, request: Request, session: DbSession, clock: ClockDep, settings: SettingsDep,
               actor: Actor = public()) -> Response:
    from carerelay.integrations.sso import saml

    try:
        provider = get_provider(_providers(request), name, "saml")
        redirect = saml.begin_saml_login(session=session, clock=clock, settings=settings, provider=provider)
    except CarerelayError as exc:
        return _refused(request, settings.organization_name, name, exc.message,
                        404 if isinstance(exc, NotFound) else 502)
    return RedirectResponse(redirect.url, status_code=303)


@router.post("/saml/{name}/acs")
def saml_acs(
    name: str, request: Request, session: DbSession, clock: ClockDep, settings: SettingsDep,
    saml_response: Annotated[str, Form(alias="SAMLResponse", max_length=500_000)],
    relay_state: Annotated[str | None, Form(alias="RelayState", max_length=200)] = None,
    actor: Actor = public(),
) -> Response:
    from carerelay.integrations.sso import saml

    try:
        provider = get_provider(_providers(request), name, "saml")
        result = saml.finish_saml_login(session=session, clock=clock, settings=settings, provider=provider,
                                        saml_response=saml_response, relay_state=relay_state,
                                        ip=client_ip(request), user_agent=request.headers.get("user-agent"))
    except CarerelayError as exc:
        return _refused(request, settings.organization_name, name, exc.message,
                        404 if isinstance(exc, NotFound) else 401)
    return _signed_in(request, settings.organization_name, result, settings.cookie_secure,
                      settings.session_max_hours * 3600)

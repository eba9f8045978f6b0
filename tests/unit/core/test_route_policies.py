"""Every registered route declares who may call it; a route without a policy fails this test."""

from __future__ import annotations

from carerelay.app import create_app
from carerelay.auth.deps import Policy
from carerelay.config import load_settings
from tests.route_walk import declared_routes


def all_routes() -> list[tuple[str, str, list[Policy]]]:
    app = create_app(load_settings(database_url="sqlite:///:memory:"))
    return [(",".join(r.methods), r.path, list(r.policies)) for r in declared_routes(app)]


def test_every_route_declares_exactly_one_policy() -> None:
    missing = [f"{m} {p}" for m, p, pol in all_routes() if len(pol) != 1]
    assert not missing, "routes without exactly one declared policy: " + ", ".join(missing)


def test_public_routes_are_the_expected_few() -> None:
    public = {p for _, p, pol in all_routes() if pol and not pol[0].signed_in and not pol[0].scim_token}
    # SSO endpoints are reached before anyone is signed in; the identity provider's signature on what
    # it sends is what they check.
    sso = {"/sso/oidc/{name}/login", "/sso/oidc/{name}/callback", "/sso/oidc/{name}/backchannel-logout",
           "/sso/saml/{name}/login", "/sso/saml/{name}/acs", "/sso/saml/{name}/metadata"}
    # Shared-device sign-in is a sign-in; unlock proves itself with the locked session's token and the PIN.
    signing_in = {"/api/auth/shared-device/sign-in", "/api/auth/unlock"}
    # WCTP authenticates inside the document (senderID + securityCode), checked by the service.
    devices = {"/wctp"}
    # /embed is an EHR launch: the HMAC-signed, expiring, single-use token it carries is what it checks.
    assert public == {"/healthz", "/readyz", "/metrics", "/docs", "/", "/sign-in", "/embed", "/api/auth/sign-in", *sso,
                      *signing_in, *devices}


def test_scim_routes_take_a_provisioning_token_and_nothing_else_does() -> None:
    """An identity provider's SCIM token opens /scim/v2 and only that; a person's session never does."""
    rows = all_routes()
    scim = {p for _, p, pol in rows if p.startswith("/scim/v2")}
    assert {"/scim/v2/Users", "/scim/v2/Groups/{group_id}", "/scim/v2/ServiceProviderConfig"} <= scim
    for _, path, pol in rows:
        assert pol, path
        assert pol[0].scim_token == path.startswith("/scim/v2"), f"{path}: {pol[0].describe()}"

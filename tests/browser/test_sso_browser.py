"""Sign-in through both local identity providers in a real browser (Chromium driven by Playwright).

A real `carerelay serve` process, a local OpenID Connect provider and a local pysaml2 IdP, each on a
loopback port. The browser starts at our sign-in page, clicks the provider's button, goes through
the provider and lands on /home signed in.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from saml2.metadata import create_metadata_string

from carerelay.core.actor import cli_actor
from carerelay.core.clock import SystemClock
from carerelay.core.db import Database, make_engine
from carerelay.core.migrate import upgrade
from carerelay.directory import service as directory
from tests.integration.sso.oidc_idp import CLIENT_ID, CLIENT_SECRET, running_oidc_idp
from tests.integration.sso.saml_idp import idp_config, key_and_cert, running_saml_idp
from tests.servers import ServerProcess, free_port, running_server

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/lib/chromium/chromium") if os.path.exists(p)), None)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-quic", "--no-first-run"]
EMAIL = "bea.browser@hospital.example"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium; .ci/run "
                                                "does this in CI)"),
    pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 is not installed"),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("sso-browser")
    url = f"sqlite:///{tmp / 'browser.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with Database(engine).unit_of_work() as session:
        directory.create_person(session=session, clock=SystemClock(), actor=cli_actor("test"), data={
            "username": "bbrowser", "given_name": "Bea", "family_name": "Browser", "profession": "nurse",
            "email": EMAIL, "roles": ["nurse"]})
    engine.dispose()
    key_and_cert(tmp, "idp")
    sp_key, sp_cert = key_and_cert(tmp, "sp")
    with running_oidc_idp(SystemClock()) as oidc, running_saml_idp(tmp) as saml:
        oidc.user = {"sub": "bea-1", "email": EMAIL}
        saml.user = {"mail": [EMAIL]}
        idp_metadata = tmp / "idp-metadata.xml"
        idp_metadata.write_bytes(create_metadata_string(None, config=idp_config(
            tmp, None, sso_url=f"{saml.base}/sso", entity_id=f"{saml.base}/metadata")))
        providers = tmp / "sso.json"
        providers.write_text(json.dumps({"providers": [
            {"name": "oidc-test", "kind": "oidc", "label": "Hospital account (OpenID Connect)",
             "issuer": oidc.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
             "match": {"claim": "email", "field": "email"}},
            {"name": "saml-test", "kind": "saml", "label": "Hospital account (SAML)",
             "idp_metadata_file": str(idp_metadata), "sp_key_file": str(sp_key), "sp_cert_file": str(sp_cert),
             "match": {"attribute": "mail", "field": "email"}},
        ]}))
        port = free_port()
        with running_server(url, tmp, port=port, CARERELAY_SSO_PROVIDERS_FILE=str(providers),
                            CARERELAY_PUBLIC_URL=f"http://127.0.0.1:{port}") as server:
            sp_metadata = tmp / "sp-metadata.xml"
            sp_metadata.write_text(httpx.get(f"{server.base_url}/sso/saml/saml-test/metadata").text)
            saml.sp_metadata = sp_metadata
            yield server


@pytest.mark.parametrize("label", ["Hospital account (OpenID Connect)", "Hospital account (SAML)"])
def test_sign_in_through_the_identity_provider_in_a_browser(stack: ServerProcess, label: str,
                                                            tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_context().new_page()
            page.goto(f"{stack.base_url}/sign-in")
            page.get_by_role("link", name=label).click()
            page.wait_for_url(f"{stack.base_url}/home", timeout=20_000)
            heading = page.locator("h1").inner_text()
        finally:
            browser.close()
    assert heading == "Signed in as Bea Browser", stack.log()[-3000:]

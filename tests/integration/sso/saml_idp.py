"""A pysaml2 identity provider for tests: its keys and configuration, and an HTTP front for a browser."""

from __future__ import annotations

import base64
import datetime as dt
import html
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import saml2
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from saml2.config import IdPConfig
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from tests.servers import free_port

IDP_ENTITY = "https://idp.test.example/metadata"
IDP_SSO = "https://idp.test.example/sso"


def key_and_cert(tmp: Path, name: str) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=365 * 30)).sign(key, hashes.SHA256()))
    key_path, cert_path = tmp / f"{name}.key", tmp / f"{name}.crt"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def idp_config(tmp: Path, sp_metadata: Path | None, lifetime_minutes: int = 15, sso_url: str = IDP_SSO,
               entity_id: str = IDP_ENTITY) -> IdPConfig:
    key, cert = tmp / "idp.key", tmp / "idp.crt"
    config = IdPConfig()
    config.load({
        "entityid": entity_id, "xmlsec_binary": shutil.which("xmlsec1"), "key_file": str(key),
        "cert_file": str(cert),
        "service": {"idp": {
            "endpoints": {"single_sign_on_service": [(sso_url, saml2.BINDING_HTTP_REDIRECT)]},
            "policy": {"default": {"lifetime": {"minutes": lifetime_minutes}, "attribute_restrictions": None,
                                   "name_form": NAME_FORMAT_URI}},
            "name_id_format": [NAMEID_FORMAT_PERSISTENT],
        }},
        "metadata": {"local": [str(sp_metadata)]} if sp_metadata else {},
    })
    return config



@dataclass
class HttpSamlIdp:
    """Answers GET /sso (HTTP-Redirect binding) for one configured user with an auto-posting form."""

    tmp: Path
    base: str
    user: dict[str, list[str]] = field(default_factory=dict)
    sp_metadata: Path | None = None

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/sso", response_class=HTMLResponse)
        def sso(SAMLRequest: str, RelayState: str = "") -> str:
            assert self.sp_metadata is not None, "load the SP metadata first"
            server = Server(config=idp_config(self.tmp, self.sp_metadata, sso_url=f"{self.base}/sso",
                                              entity_id=f"{self.base}/metadata"))
            parsed = server.parse_authn_request(SAMLRequest, saml2.BINDING_HTTP_REDIRECT)
            destination = parsed.message.assertion_consumer_service_url
            response = server.create_authn_response(
                identity=self.user, in_response_to=parsed.message.id, destination=destination,
                sp_entity_id=parsed.message.issuer.text,
                name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text="browser-user"),
                authn={"class_ref": saml2.saml.AUTHN_PASSWORD, "authn_auth": f"{self.base}/metadata"},
                sign_assertion=True, sign_response=False, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
            encoded = base64.b64encode(str(response).encode()).decode()
            return (f'<html><body onload="document.forms[0].submit()"><form method="post" '
                    f'action="{html.escape(destination)}"><input type="hidden" name="SAMLResponse" '
                    f'value="{encoded}"><input type="hidden" name="RelayState" value="{html.escape(RelayState)}">'
                    f'<noscript><button>Continue</button></noscript></form></body></html>')

        return app


@contextmanager
def running_saml_idp(tmp: Path) -> Iterator[HttpSamlIdp]:
    port = free_port()
    idp = HttpSamlIdp(tmp=tmp, base=f"http://127.0.0.1:{port}")
    server = uvicorn.Server(uvicorn.Config(idp.app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:  # waiting for a real listener to come up
        if time.monotonic() > deadline or not thread.is_alive():
            raise TimeoutError("the test SAML IdP did not start")
        time.sleep(0.02)
    try:
        yield idp
    finally:
        server.should_exit = True
        thread.join(timeout=10)



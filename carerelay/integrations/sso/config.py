"""Identity providers, read from the JSON file named by CARERELAY_SSO_PROVIDERS_FILE.

```json
{"providers": [
  {"name": "entra", "kind": "oidc", "label": "Hospital account (Entra ID)",
   "issuer": "https://login.microsoftonline.com/<tenant>/v2.0", "client_id": "…", "client_secret": "…",
   "scopes": ["openid", "email", "profile"], "match": {"claim": "preferred_username", "field": "ms_upn"},
   "jit": false},
  {"name": "adfs", "kind": "saml", "label": "Hospital account (ADFS)",
   "idp_metadata_file": "/etc/carerelay/adfs-metadata.xml", "sp_key_file": "/etc/carerelay/sp.key",
   "sp_cert_file": "/etc/carerelay/sp.crt", "match": {"attribute": "mail", "field": "email"}, "jit": false}
]}
```

``match.field`` is the carerelay field the claim/attribute is compared with: ``email``, ``username``
or an external id (``ms_upn``, ``unique_id``, ``npi``, …). ``jit`` creates a person on first sign-in
when nobody matches; it is off unless set.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carerelay.core.errors import Invalid, NotFound
from carerelay.directory.models import EXTERNAL_ID_FIELDS

MATCH_FIELDS = ("email", "username", *EXTERNAL_ID_FIELDS)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")


@dataclass(frozen=True)
class Provider:
    name: str
    kind: str
    label: str
    match_field: str
    match_source: str  # the OIDC claim or SAML attribute holding the value
    jit: bool = False
    issuer: str = ""
    client_id: str = ""
    client_secret: str = ""
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    idp_metadata_file: str = ""
    sp_key_file: str = ""
    sp_cert_file: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _provider(raw: dict[str, Any], where: str) -> Provider:
    name = str(raw.get("name", ""))
    if not _NAME.match(name):
        raise Invalid(f"{where}: name must be lower-case letters, digits, - or _ (got {name!r})")
    kind = raw.get("kind")
    if kind not in ("oidc", "saml"):
        raise Invalid(f"{where} ({name}): kind must be oidc or saml")
    match = raw.get("match") or {}
    match_field = match.get("field", "email")
    if match_field not in MATCH_FIELDS:
        raise Invalid(f"{where} ({name}): match.field must be one of {', '.join(MATCH_FIELDS)}")
    source = match.get("claim") if kind == "oidc" else match.get("attribute")
    if kind == "saml" and not source:
        source = "name_id"
    common = {"name": name, "kind": kind, "label": str(raw.get("label") or name), "match_field": match_field,
              "match_source": str(source or "email"), "jit": bool(raw.get("jit", False))}
    if kind == "oidc":
        for key in ("issuer", "client_id"):
            if not raw.get(key):
                raise Invalid(f"{where} ({name}): {key} is required for an OpenID Connect provider")
        return Provider(**common, issuer=str(raw["issuer"]).rstrip("/"), client_id=str(raw["client_id"]),
                        client_secret=str(raw.get("client_secret", "")),
                        scopes=tuple(raw.get("scopes") or ("openid", "email", "profile")))
    for key in ("idp_metadata_file", "sp_key_file", "sp_cert_file"):
        if not raw.get(key) or not Path(raw[key]).is_file():
            raise Invalid(f"{where} ({name}): {key} must name a readable file")
    return Provider(**common, idp_metadata_file=raw["idp_metadata_file"], sp_key_file=raw["sp_key_file"],
                    sp_cert_file=raw["sp_cert_file"])


def load_providers(path: str) -> dict[str, Provider]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise Invalid(f"cannot read the SSO providers file {path}: {exc}", field="sso_providers_file") from exc
    found: dict[str, Provider] = {}
    for i, raw in enumerate(data.get("providers") or []):
        provider = _provider(raw, f"{path} providers[{i}]")
        if provider.name in found:
            raise Invalid(f"{path}: provider name {provider.name!r} is used twice")
        found[provider.name] = provider
    return found


def get_provider(providers: dict[str, Provider], name: str, kind: str | None = None) -> Provider:
    provider = providers.get(name)
    if provider is None or (kind is not None and provider.kind != kind):
        raise NotFound(f"no {kind or 'SSO'} identity provider named {name!r}")
    return provider

"""The incremental filters and watermarks of the LDAP sync, for each directory's change marker.

Active Directory's uSNChanged cannot be exercised against OpenLDAP (slapd has no such attribute), so
the filter builder and the watermark arithmetic are checked here on their own.
"""

from __future__ import annotations

import pytest
from ldap3.operation.search import parse_filter

from carerelay.integrations.ldap import service as ldap

AD_FILTER = "(&(objectCategory=person)(objectClass=user))"


def _config(incremental: str) -> ldap.LdapConfig:
    return ldap.LdapConfig(url="ldap://dc01.example.org", bind_dn="", bind_password="", base_dn="DC=example,DC=org",
                           user_filter=AD_FILTER, attributes={"username": "sAMAccountName"}, incremental=incremental)


@pytest.mark.parametrize("incremental, watermark, expected", [
    # USNs are integers that only grow: strictly after the highest one seen last time.
    ("uSNChanged", "12345", f"(&{AD_FILTER}(uSNChanged>=12346))"),
    ("uSNChanged", "9", f"(&{AD_FILTER}(uSNChanged>=10))"),
    # A CSN names one change exactly: newer than it, never it again.
    ("entryCSN", "20261124140000.000001Z#000000#000#000000",
     f"(&{AD_FILTER}(entryCSN>=20261124140000.000001Z#000000#000#000000)"
     "(!(entryCSN<=20261124140000.000001Z#000000#000#000000)))"),
    # Whole seconds: the last second is read again rather than a change inside it missed.
    ("modifyTimestamp", "20261124140000Z", f"(&{AD_FILTER}(modifyTimestamp>=20261124140000Z))"),
])
def test_changed_filter_per_marker(incremental: str, watermark: str, expected: str) -> None:
    built = ldap._changed_filter(_config(incremental), watermark)
    assert built == expected
    parse_filter(built, None, auto_escape=True, auto_encode=True, validator=None, check_names=False)


def test_usn_watermark_is_the_numerically_highest() -> None:
    # As text "9" > "10"; as USNs 10 is later, and taking "9" would read the same changes forever.
    assert ldap._newest(["9", "10", None, "7"], "uSNChanged") == "10"
    assert ldap._newest(["20261124140001Z", "20261124135959Z"], "modifyTimestamp") == "20261124140001Z"
    assert ldap._newest([None, None], "uSNChanged") is None


def test_a_usn_watermark_that_is_not_a_number_is_refused_loudly() -> None:
    with pytest.raises(ValueError):
        ldap._changed_filter(_config("uSNChanged"), "not-a-usn")

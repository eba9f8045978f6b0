"""What every node and CLI command pays at start: optional integrations' heavy libraries wait until used.

pysaml2 takes about a second to import and asyncssh a third of one; a node with no SAML provider and
no SFTP feed, and every CLI command, should not pay that at each start (a restarting node is a node
not delivering alerts).
"""

from __future__ import annotations

import subprocess
import sys

LAZY = ("saml2", "asyncssh")


def test_the_app_and_the_cli_load_without_pysaml2_or_asyncssh() -> None:
    code = ("import sys, carerelay.app, carerelay.cli; "
            f"print(','.join(m for m in {LAZY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == ""

"""`carerelay embed url` prints a launch link the server accepts, and refuses without a key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from carerelay.core.clock import SystemClock
from carerelay.web.launch import check_token

KEY = "cli-test-launch-key-0123456789abcdefgh"


def test_launch_url(tmp_path: Path) -> None:
    env = {**os.environ, "CARERELAY_ENV_FILE": str(tmp_path / "none.env"), "CARERELAY_EMBED_LAUNCH_KEY": KEY,
           "CARERELAY_PUBLIC_URL": "https://carerelay.example/"}

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "carerelay", "embed", "url", *args], env={**env, **extra},
                              capture_output=True, text=True, timeout=120)

    made = run("--user", "GHOUSE", "--mrn", "MRN1001")
    assert made.returncode == 0, made.stderr
    url = made.stdout.strip()
    assert url.startswith("https://carerelay.example/embed?token=v1.")
    claims = check_token(key=KEY, token=url.split("token=", 1)[1], now=SystemClock().now(), max_seconds=300)
    assert (claims.user, claims.patient) == ("GHOUSE", "MRN1001")
    too_long = run("--user", "GHOUSE", "--mrn", "MRN1001", "--seconds", "3600")
    assert too_long.returncode == 2 and "--seconds must be" in too_long.stderr
    keyless = run("--user", "GHOUSE", "--mrn", "MRN1001", CARERELAY_EMBED_LAUNCH_KEY="")
    assert keyless.returncode == 2 and "set CARERELAY_EMBED_LAUNCH_KEY" in keyless.stderr

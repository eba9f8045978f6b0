"""A wrong setting stops start-up with one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from carerelay.config import ConfigError, load_settings


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"CARERELAY_PORT": "99999"}, "CARERELAY_PORT"),
        ({"CARERELAY_DATABASE_URL": "mysql://db/x"}, "CARERELAY_DATABASE_URL"),
        ({"CARERELAY_LOG_LEVEL": "LOUD"}, "CARERELAY_LOG_LEVEL"),
        ({"CARERELAY_SESSION_IDLE_MINUTES": "soon"}, "CARERELAY_SESSION_IDLE_MINUTES"),
        ({"CARERELAY_TIMER_THREADS": "0"}, "CARERELAY_TIMER_THREADS"),
    ],
)
def test_wrong_setting_is_one_clear_line(env: dict[str, str], name: str) -> None:
    result = subprocess.run([sys.executable, "-m", "carerelay", "serve"], env={**os.environ, **env},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"carerelay: invalid setting {name}:")


def test_defaults_are_sane() -> None:
    settings = load_settings()
    assert settings.is_sqlite and settings.port == 8000 and settings.sqlite_synchronous == "FULL"
    with pytest.raises(ConfigError, match="CARERELAY_PORT"):
        load_settings(port=0)


def test_example_file_documents_every_setting() -> None:
    from pathlib import Path

    from carerelay.config import Settings

    example = (Path(__file__).resolve().parents[3] / "carerelay.env.example").read_text()
    for field in Settings.model_fields:
        assert f"CARERELAY_{field.upper()}=" in example, f"CARERELAY_{field.upper()} is not documented"

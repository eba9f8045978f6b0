"""The web client's settings: the launch key, Epic deep-link templates, and the test-only clock that a
production server refuses."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carerelay.config import ConfigError, load_settings
from carerelay.core.clock import FileClock
from carerelay.web.deeplinks import epic_links
from carerelay.web.launch import LaunchRefused, build_token, check_token


def test_test_clock_is_refused_outside_test_runs(tmp_path: Path) -> None:
    clock_file = tmp_path / "now"
    clock_file.write_text("2026-11-24T12:55:00+00:00")
    with pytest.raises(ConfigError, match=r"CARERELAY_TEST_CLOCK_FILE: .*refused unless CARERELAY_ENVIRONMENT=test"):
        load_settings(test_clock_file=str(clock_file))
    assert load_settings(environment="test", test_clock_file=str(clock_file)).test_clock_file == str(clock_file)


def test_file_clock_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "now"
    path.write_text("2026-11-24T12:55:00+00:00\n")
    clock = FileClock(path)
    assert clock.now() == datetime(2026, 11, 24, 12, 55, tzinfo=UTC)
    staged = tmp_path / "next"
    staged.write_text("2026-11-24T07:05:00-06:00")
    os.replace(staged, path)
    assert clock.now() == datetime(2026, 11, 24, 13, 5, tzinfo=UTC)
    naive = tmp_path / "naive"
    naive.write_text("2026-11-24T13:05:00")
    with pytest.raises(ValueError, match="needs an offset"):
        FileClock(naive)


def test_launch_key_must_be_long() -> None:
    with pytest.raises(ConfigError, match=r"CARERELAY_EMBED_LAUNCH_KEY: .*at least 32"):
        load_settings(embed_launch_key="short")


@pytest.mark.parametrize("template, problem", [
    ("javascript:alert({mrn})", "javascript:"),
    ("epichaiku://open?patient={patient}", "unknown placeholder {patient}"),
    ("no-scheme-here", "absolute URL"),
    ("epichaiku://open?patient={mrn", "not a valid template"),
])
def test_bad_deep_link_templates_stop_start_up(template: str, problem: str) -> None:
    with pytest.raises(ConfigError, match="CARERELAY_EPIC_HAIKU_URL") as caught:
        load_settings(epic_haiku_url=template)
    assert problem in str(caught.value)


def test_deep_links_encode_the_identifier() -> None:
    settings = load_settings(epic_haiku_url="epichaiku://open?patient={epic_patient_id}",
                             epic_rover_url="https://rover.example/open?mrn={mrn}&ctx=1")
    links = epic_links(settings, mrn="MRN 1/2&x=<y>")
    assert [(link.app, link.url) for link in links] == [
        ("Haiku", "epichaiku://open?patient=MRN%201%2F2%26x%3D%3Cy%3E"),
        ("Rover", "https://rover.example/open?mrn=MRN%201%2F2%26x%3D%3Cy%3E&ctx=1")]


def test_token_checks_without_a_database() -> None:
    now = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
    key = "s" * 32
    token = build_token(key=key, ehr_username="GHOUSE", mrn="MRN1001", expires_at=now + timedelta(minutes=2))
    claims = check_token(key=key, token=token, now=now, max_seconds=300)
    assert (claims.user, claims.patient) == ("GHOUSE", "MRN1001")
    head, body, mac = token.split(".")
    tampered = f"{head}.{body[:-2]}AA.{mac}"
    with pytest.raises(LaunchRefused, match="signature does not match"):
        check_token(key=key, token=tampered, now=now, max_seconds=300)
    with pytest.raises(LaunchRefused, match="expired"):
        check_token(key=key, token=token, now=now + timedelta(minutes=3), max_seconds=300)
    with pytest.raises(LaunchRefused, match="not set up"):
        check_token(key="", token=token, now=now, max_seconds=300)

"""Health, readiness and metrics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from carerelay.app import create_app
from carerelay.config import load_settings
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database, make_engine
from tests.servers import free_port


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_not_ready_when_the_schema_is_behind(client: TestClient, db: Database) -> None:
    with db.unit_of_work() as session:
        session.execute(text("UPDATE alembic_version SET version_num = 'older'"))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "carerelay db upgrade" in response.json()["migrations"]


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_not_ready_when_the_database_is_unreachable(kind: str, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    url = (f"postgresql://postgres@127.0.0.1:{free_port()}/carerelay" if kind == "postgresql"
           else f"sqlite:///{tmp_path / 'no-such-directory' / 'carerelay.db'}")
    settings = load_settings(database_url=url, log_format="text", run_timers=False)
    app = create_app(settings, db=Database(make_engine(url)), clock=FakeClock())
    client = TestClient(app)  # no lifespan: nothing else tries the database
    assert client.get("/healthz").status_code == 200  # the process is fine; only readiness fails
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable: OperationalError"}
    assert any("database unreachable" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_metrics_count_requests(client: TestClient) -> None:
    client.get("/healthz")
    body = client.get("/metrics").text
    assert 'carerelay_http_requests_total{method="GET",route="/healthz",status="200"}' in body


def test_metrics_take_a_token_once_one_is_set(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    settings = load_settings(database_url=url, run_timers=False, metrics_token="scrape-me-7f3a")
    client = TestClient(create_app(settings, db=Database(make_engine(url)), clock=FakeClock()))
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert "CARERELAY_METRICS_TOKEN" in refused.json()["detail"]
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    allowed = client.get("/metrics", headers={"Authorization": "Bearer scrape-me-7f3a"})
    assert allowed.status_code == 200 and "carerelay_http_requests_total" in allowed.text


def test_docs_are_served_without_a_cdn(client: TestClient) -> None:
    page = client.get("/docs").text
    assert "/static/swagger/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "carerelay"


def test_web_sign_in_page_flow(client: TestClient) -> None:
    page = client.get("/sign-in").text
    assert "Sign in" in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    bad = client.post("/sign-in", data={"username": "cnurse", "password": "wrong-one", "csrf": csrf[1]})
    assert bad.status_code == 401 and "sign-in failed" in bad.text
    good = client.post("/sign-in", data={"username": "cnurse", "password": "carerelay-demo", "csrf": csrf[1]},
                       follow_redirects=False)
    assert good.status_code == 303 and good.headers["location"] == "/home"
    home = client.get("/home")
    assert "Signed in as Carol Nurse, RN" in home.text

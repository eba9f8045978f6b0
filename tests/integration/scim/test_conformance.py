"""scim2-tester against a real `carerelay serve` process: every check passes or is skipped with a reason."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import httpx2 as httpx
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import EnterpriseUser, ScimProvider, User
from scim2_tester import Status, check_server

from carerelay.core.actor import cli_actor
from carerelay.core.clock import SystemClock
from carerelay.core.db import Database
from carerelay.core.migrate import upgrade
from carerelay.integrations.scim import resources
from carerelay.integrations.scim import service as scim
from carerelay.integrations.scim.resources import CarerelayUser, ScimGroup
from tests.conftest import _create_backend, _drop_backend
from tests.servers import ServerProcess, running_server

pytestmark = pytest.mark.slow


class FreshNpis(Sequence[str]):
    """Example values for the NPI attribute: a new valid, unused NPI each time the tester draws one.

    scim2-tester fills strings with UUIDs unless a field lists examples; an NPI must be ten digits
    and unique, so a fixed list would make the tester collide with its own earlier users.
    """

    def __len__(self) -> int:
        return 1_000_000

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            raise TypeError("draw one at a time")
        return "".join(random.choice("0123456789") for _ in range(10))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def scim_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[ServerProcess, str]]:
    """A database of its own (a fresh SQLite file, or a fresh PostgreSQL schema): the server commits."""
    tmp = tmp_path_factory.mktemp(f"scim-conformance-{request.param}")
    backend = _create_backend(request.param, tmp)
    try:
        engine = backend.engine()
        upgrade(engine)
        with Database(engine).unit_of_work() as session:
            token = scim.create_token(session=session, clock=SystemClock(), actor=cli_actor("test"),
                                      provider="scim2-tester").token
        engine.dispose()
        with running_server(backend.cli_url(), Path(tmp)) as server:
            yield server, token
    finally:
        _drop_backend(backend)


def _client(server: ServerProcess, token: str) -> SyncSCIMClient:
    """Described with our own resource classes, so the NPI examples below reach the tester's filler;
    the discovery endpoints are still checked on their own by the tester."""
    base = f"{server.base_url}/scim/v2"
    http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    provider = ScimProvider([User, EnterpriseUser, CarerelayUser, ScimGroup], resources.resource_types(base))
    return SyncSCIMClient(http, provider=provider)


def test_scim2_tester_finds_no_failure(scim_server: tuple[ServerProcess, str]) -> None:
    server, token = scim_server
    field = CarerelayUser.model_fields["npi"]
    saved: Any = field.examples
    field.examples = FreshNpis()  # type: ignore[assignment]  # a drawing sequence, not a list
    try:
        results = check_server(_client(server, token))
    finally:
        field.examples = saved
    failures = [f"{r.title} [{r.resource_type}]: {r.reason}" for r in results
                if r.status not in (Status.SUCCESS, Status.SKIPPED)]
    assert not failures, "\n".join(failures) + "\n--- server log ---\n" + server.log()[-4000:]
    assert len(results) > 50, "the checker ran too few checks to mean anything"
    skipped = [r for r in results if r.status == Status.SKIPPED]
    assert all(r.reason for r in skipped), "a skipped check must say why"
    documented = _documented_skips()
    unlisted = sorted({f"{r.title} [{r.resource_type}]: {r.reason}" for r in skipped if r.title not in documented})
    assert not unlisted, "list these skipped checks, with the reason, in docs/subsystems/identity.md:\n" + \
        "\n".join(unlisted)


def _documented_skips() -> set[str]:
    """The check names in the skipped-checks table of the identity page (its first column)."""
    page = (Path(__file__).resolve().parents[3] / "docs" / "subsystems" / "identity.md").read_text()
    section = page.split("### Conformance: scim2-tester", 1)[1].split("\n#", 1)[0]
    return {line.split("|")[1].strip().strip("`") for line in section.splitlines()
            if line.startswith("| `")}


def test_wrong_token_is_a_scim_401(scim_server: tuple[ServerProcess, str]) -> None:
    server, _token = scim_server
    response = httpx.get(f"{server.base_url}/scim/v2/Users", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/scim+json")
    assert response.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]

"""The OpenAPI contract under generated input (schemathesis, in-process over ASGI, no server).

For every documented operation, schemathesis draws requests from the schema — valid ones and
malformed ones — and sends them as a signed-in system administrator (who passes most gates, so the
handlers themselves are reached). Every answer must be: never a 5xx; a status code the operation
documents; the documented content type; a body that matches the documented schema. Each request
runs in a savepoint rolled back afterwards, so cases never see each other's writes.

Bounded for the suite: a few examples per operation, valid and malformed mixed, derandomized (the same cases every
run), no deadline (the machine is shared).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine

from carerelay.app import create_app
from carerelay.config import load_settings
from tests.api.shared_app import SharedApp, shared_app
from tests.conftest import TEST_KEYS, Backend

CHECKS = [schemathesis.checks.not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]

EXCLUDED_PREFIXES = (
    # SCIM speaks application/scim+json with its own error shape, and is checked end to end against a
    # live server by scim2-tester (tests/api/scim); its routes are not in the OpenAPI document anyway.
    "/scim/v2",
)

EXAMPLES = 4


def _operation_labels() -> list[str]:
    app = create_app(load_settings(database_url="sqlite:///:memory:"))
    labels: list[str] = []
    for path, item in app.openapi()["paths"].items():
        if path.startswith(EXCLUDED_PREFIXES):
            continue
        labels.extend(f"{method.upper()} {path}" for method in item)
    return labels


LABELS = _operation_labels()


def _has_input(operation: Any) -> bool:
    definition = operation.definition.raw
    return bool(definition.get("parameters") or definition.get("requestBody"))


@pytest.fixture(scope="module")
def shared(engine: Engine, backend: Backend) -> Iterator[SharedApp]:
    app_settings = load_settings(database_url=backend.url, log_format="text", attachment_keys=TEST_KEYS,
                                 run_timers=False)
    with shared_app(engine, app_settings) as app:
        yield app


@pytest.fixture(scope="module")
def api_schema(shared: SharedApp) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", shared.app)


@pytest.mark.parametrize("label", LABELS)
def test_operation_keeps_its_contract(label: str, api_schema: Any, shared: SharedApp) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label
    headers = shared.headers("system_admin")
    valid = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
    # Malformed input where there is any to malform: bad types, missing fields, values out of range.
    cases = st.one_of(valid, operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)) \
        if _has_input(operation) else valid

    @given(case=cases)
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        with shared.rolled_back():
            case.call_and_validate(headers=headers, checks=CHECKS)

    run()

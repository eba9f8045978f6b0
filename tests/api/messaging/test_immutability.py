"""No interface edits, retracts or deletes a message: HTTP, services, CLI, and the database itself."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from carerelay import cli
from carerelay.core.db import Database
from carerelay.messaging import compliance, service
from tests.api.messaging.helpers import direct, send, user
from tests.route_walk import expand_routes


def test_no_route_changes_a_message(client: TestClient) -> None:
    nurse, doc = user(client, "cnurse"), user(client, "jwilson")
    conv = direct(client, nurse, doc)
    message = send(client, nurse, conv, "final answer")
    for method in ("PUT", "PATCH", "DELETE"):
        for url in (f"/api/conversations/{conv}/messages/{message['id']}", f"/api/messages/{message['id']}",
                    f"/api/conversations/{conv}/messages"):
            assert client.request(method, url, headers=nurse.headers).status_code in (404, 405)
    routes = [r for r in expand_routes(client.app.routes) if isinstance(r, APIRoute)]  # type: ignore[attr-defined]
    writers = {(m, r.path) for r in routes for m in (r.methods or ()) if m in ("PUT", "PATCH", "DELETE")}
    assert not {w for w in writers if "message" in w[1]}, writers
    assert client.get(f"/api/conversations/{conv}/messages", headers=doc.headers).json()[0]["text"] == "final answer"


def test_no_service_or_command_edits_retracts_or_deletes() -> None:
    verbs = ("edit", "update_message", "retract", "delete", "recall", "unsend")
    for module in (service, compliance):
        names = [n for n, obj in vars(module).items()
                 if callable(obj) and getattr(obj, "__module__", None) == module.__name__]
        assert not [n for n in names if any(v in n for v in verbs)], module.__name__
    commands = [c.name or "" for group in cli.app.registered_groups if group.typer_instance
                for c in group.typer_instance.registered_commands] + [c.name or "" for c in cli.app.registered_commands]
    assert not [c for c in commands if any(v in c for v in verbs)]


def test_database_refuses_update_and_early_delete(client: TestClient, db: Database) -> None:
    nurse, doc = user(client, "cnurse"), user(client, "jwilson")
    message = send(client, nurse, direct(client, nurse, doc), "as sent")
    with db.unit_of_work() as session:
        conn = session.connection()
        for statement in (f"UPDATE messages SET body = 'altered' WHERE id = {message['id']}",
                          f"UPDATE messages SET priority = 'critical' WHERE id = {message['id']}",
                          f"DELETE FROM messages WHERE id = {message['id']}"):
            with pytest.raises(DBAPIError, match=r"immutable|cannot be deleted"), conn.begin_nested():
                conn.execute(text(statement))
        assert conn.execute(text(f"SELECT body FROM messages WHERE id = {message['id']}")).scalar_one() == "as sent"

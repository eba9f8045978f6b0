"""Who is acting, passed from adapters into services.

Services need the acting identity for permission checks and the audit log but must not know
whether it came from a cookie, a bearer token, an HL7 feed or the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Actor:
    person_id: int | None
    username: str
    roles: frozenset[str] = field(default_factory=frozenset)
    session_id: int | None = None
    ip: str | None = None
    # The person's name as others see it, when the adapter has just loaded it (spares the send a query).
    display_name: str = ""

    def has_any(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


SYSTEM = Actor(person_id=None, username="system", roles=frozenset({"system"}))


def cli_actor(username: str = "cli") -> Actor:
    return Actor(person_id=None, username=username, roles=frozenset({"system"}), ip="local")

"""What a paging protocol session needs from its runtime; the database work happens behind it."""

from __future__ import annotations

from typing import Protocol

from carerelay.integrations.paging.service import Outcome, Page


class Sink(Protocol):
    async def page(self, page: Page) -> Outcome: ...

    async def refuse(self, page: Page, code: int, reason: str) -> Outcome: ...

    async def login(self, channel: str, sender_id: str | None, code: str | None) -> tuple[str | None, int, str]: ...

    async def tap_sender(self, password: str) -> str | None: ...

    async def known(self, recipient_id: str) -> bool: ...

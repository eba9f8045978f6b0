"""The paging listeners of one node: TAP and SNPP over TCP and e-mail-to-pager over SMTP, in the
event loop of ``carerelay serve``, each on its own port (0 disables it).

The protocol sessions only frame and answer; every page goes through the paging intake in one
database thread (a unit of work per page, committed before the sender hears "accepted"), so a
TAP ACK, an SNPP 250 or an SMTP 250 means the page is stored and its alert raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from carerelay.config import ConfigError, Settings
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.integrations.paging import email, snpp, tap
from carerelay.integrations.paging import service as paging
from carerelay.integrations.paging.service import INTERNAL, Outcome, Page

log = logging.getLogger("carerelay.paging")

T = TypeVar("T")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def allow_list(settings: Settings) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in settings.paging_allow.split(",")
                     if c.strip())
    except ValueError as exc:
        raise ConfigError(f"invalid setting CARERELAY_PAGING_ALLOW: {exc}") from None


class PagingRuntime:
    """``start`` binds the enabled listeners (``ports`` says where each one is); ``stop`` closes them.

    From the settings, a port of 0 means off. ``listen`` given (tests) names the listeners to run,
    with 0 meaning a free port the system picks."""

    def __init__(self, *, db: Database, settings: Settings, clock: Clock, listen: dict[str, int] | None = None) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        configured = {"tap": settings.tap_port, "snpp": settings.snpp_port, "smtp": settings.pager_smtp_port}
        self.wanted = listen if listen is not None else {n: p for n, p in configured.items() if p > 0}
        self.allow = allow_list(settings)
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[Any]] = set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paging-db")

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        factories: dict[str, Callable[[], Awaitable[asyncio.Server]]] = {
            "tap": lambda: asyncio.start_server(self._session("tap"), self.settings.paging_host, self.wanted["tap"]),
            "snpp": lambda: asyncio.start_server(self._session("snpp"), self.settings.paging_host,
                                                 self.wanted["snpp"], limit=snpp.MAX_LINE),
            "smtp": lambda: loop.create_server(self._smtp_factory, self.settings.paging_host, self.wanted["smtp"]),
        }
        for name, port in self.wanted.items():
            try:
                server = await factories[name]()
            except OSError as exc:
                log.error("paging listener cannot listen", extra={"listener": name, "port": port, "error": str(exc)})
                await self.stop()
                raise
            self._servers.append(server)
            self.ports[name] = server.sockets[0].getsockname()[1]
            log.info("paging listener listening", extra={"listener": name, "host": self.settings.paging_host,
                                                         "port": self.ports[name]})

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------ the sink: database work, one thread

    async def _in_db(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def page(self, page: Page) -> Outcome:
        def run() -> Outcome:
            with self.db.unit_of_work() as session:
                return paging.receive_page(session=session, clock=self.clock, page=page)

        try:
            return await self._in_db(run)
        except Exception as exc:
            log.exception("page could not be stored", extra={"channel": page.channel,
                                                              "recipient": page.recipient_id})
            return await self.refuse(page, INTERNAL, f"could not be stored ({type(exc).__name__}); send again")

    async def refuse(self, page: Page, code: int, reason: str) -> Outcome:
        def run() -> Outcome:
            with self.db.unit_of_work() as session:
                return paging.refuse(session=session, clock=self.clock, page=page, code=code, reason=reason)

        try:
            return await self._in_db(run)
        except Exception:
            log.exception("refusal could not be stored", extra={"channel": page.channel, "reason": reason})
            raise

    async def login(self, channel: str, sender_id: str | None, code: str | None) -> tuple[str | None, int, str]:
        def run() -> tuple[str | None, int, str]:
            with self.db.read_only() as session:
                sender, result, reason = paging.check_sender(session=session, sender_id=sender_id,
                                                             security_code=code, channel=channel)
                return (sender.sender_id if sender else None), result, reason

        return await self._in_db(run)

    async def tap_sender(self, password: str) -> str | None:
        def run() -> str | None:
            with self.db.read_only() as session:
                for sender in paging.list_senders(session=session):
                    if "tap" in sender.channels and sender.active and sender.code_hash is not None:
                        found, _, _ = paging.check_sender(session=session, sender_id=sender.sender_id,
                                                          security_code=password, channel="tap")
                        if found is not None:
                            return found.sender_id
                return None

        return await self._in_db(run)

    async def known(self, recipient_id: str) -> bool:
        def run() -> bool:
            with self.db.read_only() as session:
                return paging.find_target(session=session, recipient_id=recipient_id) is not None

        return await self._in_db(run)

    # ------------------------------------------------------------ connections

    def _allowed(self, peer: Any) -> bool:
        if not self.allow:
            return True
        try:
            address = ipaddress.ip_address(peer[0]) if isinstance(peer, tuple) else None
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address is not None and any(address in net for net in self.allow)

    def _session(self, name: str) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)
            peername = writer.get_extra_info("peername")
            peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else None
            try:
                if not self._allowed(peername):
                    log.warning("paging connection refused: not on the allow-list", extra={"listener": name,
                                                                                          "peer": peer})
                    return
                if len(self._connections) > self.settings.paging_max_connections:
                    log.warning("paging connection refused: too many", extra={"listener": name, "peer": peer})
                    return
                if name == "tap":
                    await tap.serve(reader, writer, self, peer=peer, password=self.settings.tap_password,
                                    idle_timeout=self.settings.paging_idle_timeout_seconds,
                                    max_chars=self.settings.paging_max_message_chars)
                else:
                    await snpp.serve(reader, writer, self, peer=peer, require_login=self.settings.snpp_require_login,
                                     idle_timeout=self.settings.paging_idle_timeout_seconds,
                                     max_chars=self.settings.paging_max_message_chars,
                                     banner=self.settings.wctp_responder)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                log.info("paging connection dropped", extra={"listener": name, "peer": peer, "error": str(exc)})
            except asyncio.CancelledError:
                pass
            except Exception:  # a session must never take the listener down; the sender sees the line drop
                log.exception("paging session failed", extra={"listener": name, "peer": peer})
            finally:
                self._connections.discard(task)
                writer.close()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await writer.wait_closed()

        return handle

    def _smtp_factory(self) -> asyncio.Protocol:
        handler = email.PagerMailHandler(self, domain=self.settings.pager_email_domain,
                                         max_chars=self.settings.paging_max_message_chars)
        protocol = email.smtp_protocol(handler, hostname=self.settings.wctp_responder,
                                       timeout=self.settings.paging_idle_timeout_seconds)
        runtime = self
        made = protocol.connection_made

        def connection_made(transport: asyncio.BaseTransport) -> None:
            if not runtime._allowed(transport.get_extra_info("peername")):
                log.warning("smtp connection refused: not on the allow-list",
                            extra={"peer": str(transport.get_extra_info("peername"))})
                transport.close()
                return
            made(transport)

        protocol.connection_made = connection_made  # type: ignore[method-assign]
        return protocol

"""A real SFTP server on a loopback port (asyncssh's own), serving a temporary folder, for feed tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncssh


@dataclass(frozen=True)
class SftpServer:
    port: int
    root: Path
    host_key: str  # the server's public host key, OpenSSH format
    client_key_file: Path
    connections: list[str]


@contextmanager
def sftp_server(tmp: Path) -> Iterator[SftpServer]:
    root = tmp / "sftp-root"
    for folder in ("outbox", "archive"):
        (root / folder).mkdir(parents=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    key_file = tmp / "client_key"
    key_file.write_bytes(client_key.export_private_key())
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())
    connections: list[str] = []

    class Server(asyncssh.SSHServer):
        def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
            connections.append(str(conn.get_extra_info("peername")))

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> asyncssh.SSHAcceptor:
        return await asyncssh.listen(
            "127.0.0.1", 0, server_factory=Server, server_host_keys=[host_key], authorized_client_keys=authorized,
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(root).encode()), allow_scp=False)

    acceptor = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    try:
        yield SftpServer(acceptor.get_port(), root, host_key.export_public_key().decode().strip(), key_file,
                         connections)
    finally:
        async def stop() -> None:
            acceptor.close()
            await acceptor.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

"""A lean HTTP/1.1 keep-alive client for the load generators.

The benchmarks run their load generator on the same two cores as the server they measure, so what
the generator spends is taken from the server. httpx spent 1.6–2.3 ms of CPU a request on the
2-core machines (about a third of the server's own cost of a send); a request written as bytes and
an answer read by its Content-Length costs a small fraction of that. This is not a general client:
it speaks only to our own servers (uvicorn), which answer with Content-Length or chunked bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit


class HttpError(ConnectionError):
    """The server closed the connection or answered something this client does not read."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class Connection:
    """One keep-alive connection, one request at a time; reopened when the server closes it."""

    def __init__(self, base: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base)
        self.timeout = timeout
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> Answer:
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        try:
            async with asyncio.timeout(self.timeout):
                if self._streams is None:
                    self._streams = await asyncio.open_connection(self.host, self.port)
                reader, writer = self._streams
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
                answer = await self._read(reader)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, TimeoutError) as exc:
            await self.close()
            raise HttpError(f"{method} {path}: {exc!r}") from exc
        if answer.headers.get("connection", "").lower() == "close":
            await self.close()
        return answer

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> Answer:
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            return Answer(status, headers, await reader.readexactly(int(headers["content-length"])))
        if headers.get("transfer-encoding", "").lower() != "chunked":
            raise HttpError(f"an answer with neither Content-Length nor chunked encoding: {lines[0]}")
        chunks = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")
        return Answer(status, headers, b"".join(chunks))

    async def close(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class Pool:
    """Up to ``size`` connections shared by concurrent requests; a request waits for a free one."""

    def __init__(self, base: str, size: int, timeout: float = 30.0) -> None:
        self._free: asyncio.Queue[Connection] = asyncio.Queue()
        self._all = [Connection(base, timeout) for _ in range(size)]
        for connection in self._all:
            self._free.put_nowait(connection)

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> Answer:
        connection = await self._free.get()
        try:
            return await connection.request(method, path, body, headers)
        finally:
            self._free.put_nowait(connection)

    async def close(self) -> None:
        for connection in self._all:
            await connection.close()

"""The load generators' HTTP/1.1 client, against a real socket server: what it reads must be what was
answered, or the benchmarks would count failures as deliveries."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from bench.http1 import Connection, HttpError, Pool

Answerer = Callable[[bytes], bytes]


async def _serve(answer: Answerer, body: Callable[[Connection], Awaitable[None]], *,
                 hang_up: bool = False) -> list[bytes]:
    """Runs ``body`` against a server that answers each request with ``answer(request)``, closing the
    connection after the first answer with ``hang_up``. Returns the first request line of every
    connection the server accepted."""
    accepted: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = True
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                request = head + await reader.readexactly(length)
                if first:
                    accepted.append(head.split(b"\r\n")[0])
                    first = False
                writer.write(answer(request))
                await writer.drain()
                if hang_up:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = Connection(f"http://127.0.0.1:{port}", timeout=5)
    try:
        await body(connection)
    finally:
        await connection.close()
        server.close()
        await server.wait_closed()
    return accepted


def _answer(status: str, body: bytes, *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"content-length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def test_keep_alive_reuses_one_connection_and_reads_each_body_whole() -> None:
    async def body(connection: Connection) -> None:
        for n in range(3):
            answer = await connection.request("POST", f"/n/{n}", b'{"text": "x"}', {"Content-Type": "application/json"})
            assert (answer.status, answer.body) == (201, f"answer {n}".encode())
            assert answer.headers["content-length"] == str(len(answer.body))

    def reply(request: bytes) -> bytes:
        assert request.endswith(b'\r\n\r\n{"text": "x"}') and b"Content-Type: application/json" in request
        return _answer("201 Created", b"answer " + request.split(b" ")[1].rsplit(b"/", 1)[1])

    assert asyncio.run(_serve(reply, body)) == [b"POST /n/0 HTTP/1.1"]


def test_a_chunked_answer_is_joined() -> None:
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n"

    async def body(connection: Connection) -> None:
        assert (await connection.request("GET", "/")).body == b"hello world"
        assert (await connection.request("GET", "/")).body == b"hello world"

    assert len(asyncio.run(_serve(lambda _: chunked, body))) == 1


def test_connection_close_opens_a_new_connection_for_the_next_request() -> None:
    async def body(connection: Connection) -> None:
        for _ in range(2):
            assert (await connection.request("GET", "/")).status == 503

    accepted = asyncio.run(_serve(lambda _: _answer("503 Service Unavailable", b"busy", "connection: close"), body))
    assert len(accepted) == 2


def test_a_server_that_hangs_up_mid_answer_is_an_error_not_an_answer() -> None:
    async def body(connection: Connection) -> None:
        with pytest.raises(HttpError, match="IncompleteReadError"):
            await connection.request("GET", "/")
        with pytest.raises(HttpError):
            await connection.request("GET", "/")

    asyncio.run(_serve(lambda _: b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", body, hang_up=True))


def test_an_answer_without_a_length_is_refused() -> None:
    async def body(connection: Connection) -> None:
        with pytest.raises(HttpError, match="neither Content-Length nor chunked"):
            await connection.request("GET", "/")

    asyncio.run(_serve(lambda _: b"HTTP/1.1 200 OK\r\n\r\nuntil close", body))


def test_a_pool_runs_requests_side_by_side_on_at_most_its_size() -> None:
    async def main() -> tuple[list[int], int]:
        accepted = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal accepted
            accepted += 1
            try:
                while True:
                    await reader.readuntil(b"\r\n\r\n")
                    writer.write(_answer("200 OK", b"ok"))
                    await writer.drain()
            except asyncio.IncompleteReadError:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        pool = Pool(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", size=3, timeout=5)
        answers = await asyncio.gather(*(pool.request("GET", "/") for _ in range(10)))
        await pool.close()
        server.close()
        await server.wait_closed()
        return [a.status for a in answers], accepted

    statuses, accepted = asyncio.run(main())
    assert statuses == [200] * 10 and accepted == 3

"""One HTTP request through an ASGI application in this process, with nothing between.

bench/cpu.py charges every CPU cycle of its process to the request it measures; httpx's ASGI
transport spent 0.2–0.4 ms of it a request (its request and response models, its streams), which is
not the server's. This builds the scope uvicorn would and collects what the application sends.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Scope


async def call(app: ASGIApp, method: str, path: str, body: bytes = b"",
               headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """The status and body the application answered."""
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("bench", 80),
        "headers": [(b"host", b"bench"), (b"content-length", str(len(body)).encode()),
                    *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items())],
    }
    sent_body = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent_body
        if sent_body:
            return {"type": "http.disconnect"}
        sent_body = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)

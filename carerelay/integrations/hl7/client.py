"""A small blocking MLLP client: what `carerelay hl7 send`, the tests and the benchmark use."""

from __future__ import annotations

import re
import socket
import ssl
from types import TracebackType

from carerelay.integrations.hl7.mllp import Frame, FrameReader, frame

_SEGMENT_END = re.compile(rb"\r\n|\r|\n")


def split_messages(data: bytes) -> list[bytes]:
    """Messages in a file: MLLP-framed, or plain text where each message starts with an MSH line
    (segments ended by CR, LF or CRLF). Returned with CR segment ends, bytes otherwise untouched."""
    if b"\x0b" in data:
        return [e.payload for e in FrameReader(1 << 31).feed(data) if isinstance(e, Frame)]
    messages: list[list[bytes]] = []
    for line in _SEGMENT_END.split(data):
        if not line.strip():
            continue
        if line.startswith(b"MSH") or not messages:
            messages.append([])
        messages[-1].append(line)
    return [b"\r".join(m) + b"\r" for m in messages]


class MLLPClient:
    def __init__(self, host: str, port: int, *, timeout: float = 30.0, tls: ssl.SSLContext | None = None,
                 server_hostname: str | None = None) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock: socket.socket = tls.wrap_socket(sock, server_hostname=server_hostname or host) if tls else sock
        self.reader = FrameReader(1 << 30)
        self._ready: list[bytes] = []

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, message: bytes) -> bytes:
        """Send one message, wait for its ACK (the ACK's payload bytes)."""
        self.sock.sendall(frame(message))
        return self.read_ack()

    def read_ack(self) -> bytes:
        while not self._ready:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed before the ACK")
            self._ready.extend(e.payload for e in self.reader.feed(data) if isinstance(e, Frame))
        return self._ready.pop(0)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> MLLPClient:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def ack_code(ack: bytes) -> str:
    """MSA-1 of an ACK ("" when there is no MSA)."""
    for segment in _SEGMENT_END.split(ack):
        if segment.startswith(b"MSA") and len(segment) > 4:
            return segment.split(segment[3:4])[1].decode("latin-1")
    return ""

"""TAP 1.8 (Telocator Alphanumeric Protocol) over TCP, the paging-terminal side, automatic mode.

A session: the entry device sends CR until we answer ``ID=``; it logs on with
``<ESC>PG1[password]<CR>``; we accept (``110 1.8<CR><ACK><CR>`` then ``<ESC>[p<CR>``); it sends
transactions in blocks ``<STX>field<CR>…<ETX|ETB|US>checksum<CR>``; it ends with ``<EOT><CR>`` and
we say goodbye with ``<ESC><EOT><CR>``. Field 1 is the pager id, the rest is the message.

Each block is checked (the 12-bit sum of its 7-bit characters, STX through the terminator, as
three characters 0x30–0x3F) and answered ACK (accepted), NAK (checksum: send it again) or RS
(refused: an unknown pager id, a message too long), with the standard response code in front.
Control characters inside fields arrive escaped as SUB + (character + 0x40) and are restored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from carerelay.integrations.paging.service import EXPIRED, INVALID_RECIPIENT, TOO_LONG, Page
from carerelay.integrations.paging.sink import Sink

STX, ETX, EOT, ACK, NAK, ESC, ETB, SUB, RS, US, CR, LF = (b"\x02", b"\x03", b"\x04", b"\x06", b"\x15", b"\x1b",
                                                           b"\x17", b"\x1a", b"\x1e", b"\x1f", b"\r", b"\n")
TERMINATORS = (ETX[0], ETB[0], US[0])
MAX_BLOCK = 1024  # the spec's blocks are 256 characters; some senders run over, none by this much
MAX_CHECKSUM_ERRORS = 3

GO_AHEAD = ESC + b"[p" + CR
LOGON_OK = b"110 1.8" + CR + ACK + CR
GOODBYE = b"115 Goodbye" + CR + ESC + EOT + CR


def reply(code: str, text: str, control: bytes) -> bytes:
    """A message sequence (code and text), then the control answer: ACK, NAK, RS or ESC EOT."""
    return f"{code} {text}".encode("ascii", errors="replace") + CR + control + CR


def disconnect(code: str, text: str) -> bytes:
    return reply(code, text, ESC + EOT)


def checksum(block: bytes) -> bytes:
    """TAP 1.8 section 5: the example <STX>123<CR>ABC<CR><ETX> gives b'17;'."""
    total = sum(b & 0x7F for b in block) & 0xFFF
    return bytes((0x30 + (total >> 8 & 0xF), 0x30 + (total >> 4 & 0xF), 0x30 + (total & 0xF)))


def unescape(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] == SUB[0] and i + 1 < len(data):
            out.append(data[i + 1] - 0x40 if data[i + 1] >= 0x40 else data[i + 1])
            i += 2
            continue
        out.append(data[i])
        i += 1
    return bytes(out)


def escape(data: bytes) -> bytes:
    """For senders (the tests' and tools'): one field's control characters made transparent."""
    out = bytearray()
    for b in data:
        if b < 0x20:
            out += SUB + bytes((b + 0x40,))
        else:
            out.append(b)
    return bytes(out)


def block(fields_data: bytes, terminator: bytes = ETX) -> bytes:
    """One block as a sender writes it: <STX>data<terminator><checksum><CR>."""
    body = STX + fields_data + terminator
    return body + checksum(body) + CR


@dataclass(frozen=True)
class Block:
    data: bytes  # between STX and the terminator
    terminator: int
    valid: bool


@dataclass
class Blocks:
    """Incremental block reader: feed bytes, take complete blocks (and know what was noise)."""

    buffer: bytearray

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self.buffer += bytes(b & 0x7F for b in data)

    def take(self) -> Block | bytes | None:
        """A block; an EOT (end of session, as b'\\x04'); other bytes before an STX; or None for more."""
        while self.buffer and self.buffer[0] in (CR[0], LF[0]):
            del self.buffer[0]
        if not self.buffer:
            return None
        if self.buffer[0] == EOT[0]:
            del self.buffer[:1]
            while self.buffer and self.buffer[0] in (CR[0], LF[0]):
                del self.buffer[0]
            return EOT
        if self.buffer[0] != STX[0]:
            at = self.buffer.find(STX)
            noise = bytes(self.buffer if at < 0 else self.buffer[:at])
            del self.buffer[: len(noise)]
            return noise
        end = next((i for i, b in enumerate(self.buffer) if b in TERMINATORS), -1)
        if end < 0:
            if len(self.buffer) > MAX_BLOCK:
                noise = bytes(self.buffer)
                self.buffer.clear()
                return noise
            return None
        if len(self.buffer) < end + 5:  # terminator, 3 checksum characters, CR
            return None
        whole = bytes(self.buffer[: end + 1])
        given = bytes(self.buffer[end + 1: end + 4])
        del self.buffer[: end + 5 if self.buffer[end + 4] == CR[0] else end + 4]
        return Block(whole[1:-1], whole[-1], checksum(whole) == given)


@dataclass(frozen=True)
class TapPage:
    pager_id: str
    message: str


def split_transaction(data: bytes) -> TapPage:
    """Fields end with CR; field 1 is the pager id, the rest (often one field, sometimes several
    lines) is the message."""
    fields = data.split(CR)
    if fields and fields[-1] == b"":
        fields.pop()
    text = [unescape(f).decode("ascii", errors="replace") for f in fields]
    pager_id = text[0].strip() if text else ""
    return TapPage(pager_id, "\n".join(text[1:]).rstrip())


RESPONSES = {
    INVALID_RECIPIENT: ("511", "Invalid pager ID - there is no subscriber to match this ID"),
    TOO_LONG: ("513", "Long message rejected for exceeding maximum character length"),
    EXPIRED: ("515", "Message format error"),
}


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sink: Sink, *, peer: str | None,
                password: str | None, idle_timeout: float, max_chars: int) -> None:
    """One TAP session, from the first CR to the goodbye."""

    async def read() -> bytes:
        data = await asyncio.wait_for(reader.read(4096), timeout=idle_timeout)
        if not data:
            raise ConnectionResetError("the entry device hung up")
        return data

    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    try:
        sender = await _logon(read, send, sink, password)
        if sender is None:
            return
        await send(LOGON_OK + GO_AHEAD)
        await _transactions(read, send, sink, sender, peer, max_chars)
    except TimeoutError:
        await send(disconnect("501", "A time-out occurred waiting for user input"))


async def _logon(read: Callable[[], Awaitable[bytes]], send: Callable[[bytes], Awaitable[None]], sink: Sink,
                 password: str | None) -> str | None:
    """The sender id to page as, or None after refusing the logon (the connection then ends)."""
    pending = bytearray()
    prompts = 0
    while True:
        pending += bytes(b & 0x7F for b in await read())
        while CR in pending:
            line, _, rest = bytes(pending).partition(CR)
            pending = bytearray(rest)
            line = line.lstrip(LF)
            if not line.startswith(ESC):
                if line.strip():
                    await send(disconnect("507", "Invalid logon attempt: manual mode is not supported"))
                    return None
                prompts += 1
                if prompts > 10:
                    await send(disconnect("507", "Invalid logon attempt: incorrectly formed logon sequence"))
                    return None
                await send(b"ID=")
                continue
            service, given = line[1:4], line[4:].decode("ascii", errors="replace").strip()
            if service[:2] != b"PG":
                await send(disconnect("508", "Invalid logon attempt: service type and category given is not "
                                             "supported"))
                return None
            known = await sink.tap_sender(given) if given else None
            if known is not None:
                return known
            if password and given != password:
                await send(disconnect("509", "Invalid logon attempt: invalid password supplied"))
                return None
            return "tap"


async def _transactions(read: Callable[[], Awaitable[bytes]], send: Callable[[bytes], Awaitable[None]], sink: Sink,
                        sender: str, peer: str | None, max_chars: int) -> None:
    blocks = Blocks()
    transaction = bytearray()
    checksum_errors = 0
    while True:
        item = blocks.take()
        if item is None:
            blocks.feed(await read())
            continue
        if item == EOT:
            await send(GOODBYE)
            return
        if isinstance(item, bytes):
            await send(reply("502", "Unexpected characters received before the start of a transaction", NAK))
            continue
        if not item.valid:
            checksum_errors += 1
            if checksum_errors >= MAX_CHECKSUM_ERRORS:
                await send(disconnect("503", "Excessive attempts to send/re-send a transaction with checksum "
                                             "errors"))
                return
            await send(reply("514", "Checksum error", NAK))
            continue
        checksum_errors = 0
        transaction += item.data
        if item.terminator != ETX[0]:
            if len(transaction) > max_chars + 256:
                transaction.clear()
                await send(reply("513", "Long message rejected for exceeding maximum character length", RS))
                continue
            await send(CR + ACK + CR)
            continue
        parsed = split_transaction(bytes(transaction))
        transaction.clear()
        await send(await _deliver(sink, parsed, sender, peer, max_chars))


async def _deliver(sink: Sink, parsed: TapPage, sender: str, peer: str | None, max_chars: int) -> bytes:
    page = Page(channel="tap", recipient_id=parsed.pager_id or None, text=parsed.message, sender_id=sender,
                peer=peer)
    if len(parsed.message) > max_chars:
        outcome = await sink.refuse(page, TOO_LONG, f"message of {len(parsed.message)} characters is over the "
                                                    f"limit of {max_chars}")
    else:
        outcome = await sink.page(page)
    if outcome.accepted:
        return reply("211", "Page(s) sent successfully", ACK)
    code, text = RESPONSES.get(outcome.code, ("512", "Temporarily cannot deliver to Pager ID - try later"))
    return reply(code, text, RS)

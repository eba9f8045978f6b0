"""SNPP (RFC 1861) level 1, and the level 2 commands senders use: PAGE, MESS, DATA, SEND, RESE, QUIT,
HELP, LOGI, SUBJ. Other level 2 and level 3 commands answer 500, so a sender can tell.

Lines end in CRLF (a bare LF is accepted); commands are their first four letters in any case.
Several PAGE commands before one SEND page each id with the same message. A pager id is checked
when given (550 at once if it means nothing), and each page is routed at SEND like any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from carerelay.integrations.paging.service import Page
from carerelay.integrations.paging.sink import Sink

Say = Callable[..., Awaitable[None]]
Line = Callable[[], Awaitable[str | None]]

MAX_LINE = 4096
MAX_PAGERS = 20
MAX_ERRORS = 10

HELP = [
    "214 carerelay SNPP gateway (RFC 1861 level 1, level 2: LOGIn, DATA, SUBJect)",
    "214 PAGEr <pager id> [password]   who to page (repeat for several)",
    "214 MESSage <text>                one-line message",
    "214 DATA                          multi-line message, end with a line holding only '.'",
    "214 SUBJect <text>                subject, shown before the message",
    "214 LOGIn <login id> [password]   identify this sender",
    "214 SEND                          send the page(s)",
    "214 RESEt                         forget pager ids and message",
    "214 QUIT                          end the session",
]


class _State:
    def __init__(self) -> None:
        self.login: str | None = None
        self.reset()

    def reset(self) -> None:
        self.pagers: list[str] = []
        self.message: str | None = None
        self.subject: str | None = None


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sink: Sink, *, peer: str | None,
                require_login: bool, idle_timeout: float, max_chars: int, banner: str) -> None:
    async def say(*lines: str) -> None:
        writer.write("".join(line + "\r\n" for line in lines).encode("utf-8", errors="replace"))
        await writer.drain()

    async def line() -> str | None:
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\n"), timeout=idle_timeout)
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError:
            return "\x00too long"
        return raw.rstrip(b"\r\n").decode("utf-8", errors="replace")

    state = _State()
    errors = 0
    await say(f"220 {banner} SNPP (V3) gateway ready")
    try:
        while (text := await line()) is not None:
            if text == "\x00too long":
                await say("421 Line too long, goodbye")
                return
            command, _, argument = text.strip().partition(" ")
            verb = command[:4].upper()
            answer, ok = await _command(verb, argument.strip(), state, sink, peer, require_login, max_chars, say,
                                        line)
            if answer is None:
                return
            errors = 0 if ok else errors + 1
            if errors >= MAX_ERRORS:
                await say("421 Too Many Errors, Goodbye")
                return
            await say(*answer)
    except TimeoutError:
        await say("421 Timeout, Goodbye")


async def _command(verb: str, argument: str, state: _State, sink: Sink, peer: str | None, require_login: bool,
                   max_chars: int, say: Say, line: Line) -> tuple[list[str] | None, bool]:
    """The reply lines and whether the command succeeded; (None, True) after QUIT."""
    if verb == "QUIT":
        await say("221 OK, Goodbye")
        return None, True
    if verb == "HELP":
        return [*HELP, "250 End of Help Information"], True
    if verb == "RESE":
        state.reset()
        return ["250 Reset OK"], True
    if verb == "LOGI":
        login, _, password = argument.partition(" ")
        sender, _, reason = await sink.login("snpp", login or None, password.strip() or None)
        if sender is None:
            await sink.refuse(Page(channel="snpp", recipient_id=None, text="", sender_id=login or None, peer=peer,
                                   operation="LOGIn"), 401, reason)
            return ["550 Error, Invalid Login"], False
        state.login = sender
        return ["250 Login Accepted"], True
    if verb in ("PAGE", "MESS", "DATA", "SUBJ", "SEND") and require_login and state.login is None:
        return ["550 Error, LOGIn first"], False
    if verb == "PAGE":
        pager_id = argument.split(" ")[0] if argument else ""
        if not pager_id:
            return ["550 Error, Invalid Pager ID"], False
        if len(state.pagers) >= MAX_PAGERS:
            return ["552 Maximum Entries Exceeded"], False
        if not await sink.known(pager_id):
            await sink.refuse(Page(channel="snpp", recipient_id=pager_id, text="", sender_id=state.login or "snpp",
                                   peer=peer, operation="PAGEr"), 403, f"no pager id {pager_id[:60]!r}")
            return ["550 Error, Invalid Pager ID"], False
        state.pagers.append(pager_id)
        return ["250 Pager ID Accepted"], True
    if verb in ("MESS", "DATA"):
        if state.message is not None:
            return ["503 Error, Message Already Entered"], False
        if verb == "MESS":
            text = argument
        else:
            await say("354 Begin Input; End with <CRLF>'.'<CRLF>")
            lines: list[str] = []
            size = 0
            while (got := await line()) is not None and got != ".":
                lines.append(got[1:] if got.startswith("..") else got)
                size += len(got) + 1
                if size > max_chars * 2 + 1024:
                    return ["554 Error, message too long"], False
            text = "\n".join(lines)
        if not text.strip():
            return ["550 Error, empty message"], False
        if len(text) > max_chars:
            return [f"554 Error, message over {max_chars} characters"], False
        state.message = text
        return ["250 Message OK"], True
    if verb == "SUBJ":
        state.subject = argument[:200]
        return ["250 Message Subject OK"], True
    if verb == "SEND":
        if not state.pagers or state.message is None:
            return ["503 Error, Pager ID or Message Incomplete"], False
        text = f"{state.subject}: {state.message}" if state.subject else state.message
        refused = []
        for pager_id in state.pagers:
            outcome = await sink.page(Page(channel="snpp", recipient_id=pager_id, text=text,
                                           sender_id=state.login or "snpp", peer=peer, operation="SEND"))
            if not outcome.accepted:
                refused.append(f"{pager_id} ({outcome.text})")
        state.reset()
        if refused:
            return [f"554 Error, failed for {', '.join(refused)}"[:400]], False
        return ["250 Message Sent Successfully"], True
    return ["500 Command Not Implemented"], False

"""Moving bytes: SFTP (asyncssh), a local folder, and the HTTP helper API targets share.

Called only outside database transactions. Every failure becomes an ``ExportError`` whose message
an administrator can act on ("connection refused by sftp.example.org:22", "permission denied on
/in/epic"), and whose ``retryable`` flag says whether trying again later can help.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx2

from carerelay.integrations.exports.base import ExportError
from carerelay.integrations.exports.config import FolderTransport, HttpTransport, SftpTransport

if TYPE_CHECKING:
    import asyncssh

T = TypeVar("T")


def describe(transport: SftpTransport | FolderTransport | HttpTransport) -> str:
    if isinstance(transport, SftpTransport):
        return f"sftp://{transport.username}@{transport.host}:{transport.port}/{transport.path.lstrip('/')}"
    if isinstance(transport, FolderTransport):
        return f"folder {transport.path}"
    return transport.base_url


def secret(name: str | None) -> str | None:
    if not name:
        return None
    value = os.environ.get(name)
    if value is None:
        raise ExportError(f"environment variable {name} (the connector's secret) is not set", retryable=False)
    return value


# -- folder -------------------------------------------------------------------------------------

def write_folder(transport: FolderTransport, file_name: str, payload: bytes) -> str:
    folder = Path(transport.path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"{file_name}.part"
        partial.write_bytes(payload)
        os.replace(partial, folder / file_name)
    except OSError as exc:
        raise ExportError(f"cannot write {folder / file_name}: {exc.strerror or exc}", retryable=True) from exc
    return str(folder / file_name)


def read_folder(transport: FolderTransport, pattern: str) -> tuple[str, bytes] | None:
    folder = Path(transport.path)
    try:
        candidates = [p for p in folder.iterdir() if p.is_file() and fnmatch.fnmatch(p.name, pattern)]
    except OSError as exc:
        raise ExportError(f"cannot read {folder}: {exc.strerror or exc}") from exc
    if not candidates:
        return None
    newest = max(candidates, key=lambda p: (p.stat().st_mtime, p.name))
    return newest.name, newest.read_bytes()


# -- SFTP ---------------------------------------------------------------------------------------

def _run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncssh is asynchronous; exports run in worker threads with no loop of their own."""
    return asyncio.run(factory())


async def _connect(transport: SftpTransport) -> asyncssh.SSHClientConnection:
    import asyncssh  # imported when a transfer happens: it costs every process half a second otherwise

    password = secret(transport.secret_env)
    keys = [transport.key_file] if transport.key_file else None
    if not Path(transport.known_hosts).is_file():
        raise ExportError(f"known_hosts file {transport.known_hosts} does not exist", retryable=False)
    return await asyncio.wait_for(
        asyncssh.connect(transport.host, transport.port, username=transport.username, password=password,
                         client_keys=keys, known_hosts=transport.known_hosts, agent_path=None,
                         connect_timeout=transport.timeout_seconds),
        timeout=transport.timeout_seconds)


def _sftp_error(transport: SftpTransport, exc: BaseException) -> ExportError:
    import asyncssh

    where = f"{transport.host}:{transport.port}"
    if isinstance(exc, ExportError):
        return exc
    if isinstance(exc, ConnectionRefusedError):
        return ExportError(f"connection refused by {where}")
    if isinstance(exc, asyncssh.PermissionDenied):
        return ExportError(f"{where} refused the login of {transport.username}: {exc.reason}", retryable=False)
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return ExportError(f"the host key of {where} is not the one in {transport.known_hosts}", retryable=False)
    if isinstance(exc, asyncssh.SFTPError):
        return ExportError(f"SFTP on {where}: {exc.reason}", retryable=not isinstance(
            exc, asyncssh.SFTPPermissionDenied | asyncssh.SFTPNoSuchFile))
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return ExportError(f"{where} did not answer within {transport.timeout_seconds:g} s")
    if isinstance(exc, OSError | asyncssh.Error):
        return ExportError(f"{where}: {exc}")
    raise exc


def upload_sftp(transport: SftpTransport, file_name: str, payload: bytes) -> str:
    import asyncssh

    remote_dir = transport.path.rstrip("/") or "/"
    final = f"{remote_dir}/{file_name}" if remote_dir != "." else file_name
    partial = f"{final}.part"

    async def put() -> None:
        async with await _connect(transport) as conn, conn.start_sftp_client() as sftp:
            async with sftp.open(partial, "wb") as handle:
                await handle.write(payload)
            try:  # OpenSSH's posix-rename replaces the old file atomically: readers see one or the other
                await sftp.posix_rename(partial, final)
            except asyncssh.SFTPOpUnsupported:
                if await sftp.exists(final):
                    await sftp.remove(final)
                await sftp.rename(partial, final)

    try:
        _run(put)
    except BaseException as exc:  # mapped to what an administrator can act on; anything else re-raised
        raise _sftp_error(transport, exc) from exc
    return f"sftp://{transport.username}@{transport.host}:{transport.port}/{final.lstrip('/')}"


def fetch_sftp(transport: SftpTransport, pattern: str) -> tuple[str, bytes] | None:
    """The newest file in the remote directory whose name matches ``pattern``, or None."""
    import asyncssh


    async def get() -> tuple[str, bytes] | None:
        found: tuple[str, bytes] | None = None
        async with await _connect(transport) as conn, conn.start_sftp_client() as sftp:
            names = [(_text(e.filename), e.attrs.mtime or 0) for e in await sftp.readdir(transport.path)
                     if e.attrs.type == asyncssh.FILEXFER_TYPE_REGULAR]
            matching = [(mtime, name) for name, mtime in names if fnmatch.fnmatch(name, pattern)]
            if matching:
                name = max(matching)[1]
                async with sftp.open(f"{transport.path.rstrip('/')}/{name}", "rb") as handle:
                    data = await handle.read()
                found = name, data if isinstance(data, bytes) else data.encode()
        return found

    try:
        return _run(get)
    except BaseException as exc:
        raise _sftp_error(transport, exc) from exc


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", errors="replace")


def deliver_file(transport: SftpTransport | FolderTransport | HttpTransport, file_name: str, payload: bytes) -> str:
    if isinstance(transport, SftpTransport):
        return upload_sftp(transport, file_name, payload)
    if isinstance(transport, FolderTransport):
        return write_folder(transport, file_name, payload)
    raise ExportError("a file target needs an sftp or folder transport", retryable=False)


# -- HTTP ---------------------------------------------------------------------------------------

@dataclass
class Http:
    """One client per attempt; records every call for the run's downloadable payload."""

    transport: HttpTransport
    client: httpx2.Client
    calls: list[dict[str, Any]]

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 204), record: Any = None,
                **kwargs: Any) -> httpx2.Response:
        url = path if path.startswith("http") else self.transport.base_url.rstrip("/") + path
        try:
            response = self.client.request(method, url, timeout=self.transport.timeout_seconds, **kwargs)
        except httpx2.TimeoutException as exc:
            raise ExportError(f"{method} {url}: no answer within {self.transport.timeout_seconds:g} s") from exc
        except httpx2.TransportError as exc:
            raise ExportError(f"{method} {url}: {exc}") from exc
        self.calls.append({"method": method, "url": url, "status": response.status_code,
                           **({"body": record} if record is not None else {})})
        if response.status_code in ok:
            return response
        raise http_error(method, url, response)


def http_error(method: str, url: str, response: httpx2.Response) -> ExportError:
    text = response.text[:300].strip()
    if response.status_code == 429:
        after = _retry_after(response.headers.get("Retry-After"))
        return ExportError(f"{method} {url}: rate limited (429), retry after {after:g} s", retry_after=after)
    retryable = response.status_code >= 500 or response.status_code in (408, 409)
    return ExportError(f"{method} {url}: HTTP {response.status_code} {text}", retryable=retryable)


def _retry_after(value: str | None) -> float:
    try:
        return max(1.0, float(value)) if value else 60.0
    except ValueError:
        return 60.0


def http_client() -> httpx2.Client:
    return httpx2.Client(follow_redirects=False)

"""Fetching assignment files from an SFTP folder with asyncssh.

The server's host key is pinned in the feed (``known_host_key``, OpenSSH public-key format): an SFTP
server that presents another key is refused, never trusted on first use. We authenticate with a
private key file (``client_key_file``; its passphrase, if any, from the environment variable
``secret_env``) or a password from ``secret_env``. Files matching ``pattern`` (default ``*.csv``) are
read oldest name first; the caller skips those already imported (same name and SHA-256) and, once a
file's run has committed, may move it to ``archive_dir``.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
from dataclasses import dataclass
from typing import Any

MAX_FILES = 100
CONNECT_TIMEOUT = 20.0


@dataclass(frozen=True)
class RemoteFile:
    name: str
    path: str
    content: bytes


class SftpError(Exception):
    """The server could not be reached, refused us, or presented a host key we do not trust."""


def _options(config: dict[str, Any]) -> dict[str, Any]:
    import asyncssh  # imported when a feed is pulled: it costs every process a third of a second otherwise

    try:
        host_key = asyncssh.import_public_key(config["known_host_key"])
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise SftpError(f"known_host_key is not an OpenSSH public key ({exc})") from None
    secret = os.environ.get(config["secret_env"]) if config.get("secret_env") else None
    options: dict[str, Any] = {"port": int(config.get("port", 22)), "username": config["username"],
                               "known_hosts": ([host_key], [], []), "connect_timeout": CONNECT_TIMEOUT}
    if config.get("client_key_file"):
        options["client_keys"] = [config["client_key_file"]]
        options["passphrase"] = secret
        options["password"] = None
    else:
        options["client_keys"] = None
        options["password"] = secret
    return options


async def fetch(config: dict[str, Any]) -> list[RemoteFile]:
    """Every matching file in the folder, by name."""
    import asyncssh

    try:
        async with asyncssh.connect(config["host"], **_options(config)) as conn, conn.start_sftp_client() as sftp:
            remote_dir = config["remote_dir"]
            names = sorted(n for n in await sftp.listdir(remote_dir)
                           if fnmatch.fnmatch(n, config.get("pattern", "*.csv")))[:MAX_FILES]
            found = []
            for name in names:
                path = posixpath.join(remote_dir, name)
                if not await sftp.isfile(path):
                    continue
                async with sftp.open(path, "rb", encoding=None) as handle:
                    content = await handle.read()
                found.append(RemoteFile(name, path, content if isinstance(content, bytes) else content.encode()))
            return found
    except (OSError, asyncssh.Error) as exc:
        raise SftpError(f"SFTP {config.get('username')}@{config.get('host')}:{config.get('port', 22)}: "
                        f"{type(exc).__name__}: {exc}") from None


async def archive(config: dict[str, Any], files: list[RemoteFile]) -> None:
    """Move imported files to ``archive_dir`` (when set), so the folder holds only what is new."""
    target = config.get("archive_dir")
    if not target or not files:
        return
    import asyncssh

    try:
        async with asyncssh.connect(config["host"], **_options(config)) as conn, conn.start_sftp_client() as sftp:
            for file in files:
                await sftp.rename(file.path, posixpath.join(target, file.name))
    except (OSError, asyncssh.Error) as exc:
        raise SftpError(f"SFTP archive to {target}: {type(exc).__name__}: {exc}") from None

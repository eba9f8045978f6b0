"""Real `carerelay serve` processes for tests that need a live server (crash, two-node, SIGTERM)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_until_ready(base_url: str, process: subprocess.Popen[str], log_path: Path, timeout: float = 120) -> None:
    """Poll /readyz; this waits on a real process starting, not on time passing in the system under test.

    The bound is generous because a loaded 2-core CI machine can take half a minute to import and
    migrate-check; a server that is merely slow must not fail a test about something else."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"server not ready after {timeout}s:\n{log_path.read_text()}")


@contextmanager
def running_server(database_url: str, tmp: Path, port: int | None = None, **env: str) -> Iterator[ServerProcess]:
    port = port or free_port()
    log_path = tmp / f"server-{port}.log"
    # MLLP, TAP, SNPP and pager SMTP off unless a test asks for them: parallel runs on one machine must
    # not fight over their fixed default ports
    environment = {**os.environ, "CARERELAY_DATABASE_URL": database_url, "CARERELAY_PORT": str(port),
                   "CARERELAY_LOG_FORMAT": "json", "CARERELAY_MLLP_PORT": "0", "CARERELAY_TAP_PORT": "0",
                   "CARERELAY_SNPP_PORT": "0", "CARERELAY_PAGER_SMTP_PORT": "0", **env}
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "carerelay", "serve"], env=environment, stdout=log,
                                   stderr=subprocess.STDOUT, text=True)
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_until_ready(server.base_url, process, log_path)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

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


def wait_until_ready(base_url: str, process: subprocess.Popen[str], log_path: Path, timeout: float = 90) -> None:
    """Poll /readyz; this waits on a real process starting, not on time passing in the system under test.

    Generous: importing the whole application takes 20 s and more on a 2-core machine shared by
    several test runs; a server that is truly stuck still fails, and says where its log stopped."""
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
    # MLLP off unless a test asks for it: parallel runs on one machine must not fight over port 2575
    environment = {**os.environ, "CARERELAY_DATABASE_URL": database_url, "CARERELAY_PORT": str(port),
                   "CARERELAY_LOG_FORMAT": "json", "CARERELAY_MLLP_PORT": "0", **env}
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

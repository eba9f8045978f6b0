"""A real OpenLDAP slapd for tests: temporary config and database, loopback port, memberOf overlay."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import ldap3

from tests.servers import free_port

SLAPD = "/usr/sbin/slapd"
SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "test-root-secret"


def slapd_missing() -> str | None:
    if not os.path.exists(SLAPD) or (shutil.which("slaptest") is None and not os.path.exists("/usr/sbin/slaptest")):
        return "slapd is not installed (apt-get install slapd ldap-utils; .ci/run does this in CI)"
    return None


@dataclass
class Slapd:
    url: str
    pid: int

    def admin(self) -> ldap3.Connection:
        return ldap3.Connection(ldap3.Server(self.url, get_info=ldap3.NONE), ROOT_DN, ROOT_PASSWORD, auto_bind=True,
                                raise_exceptions=True)


def _config(tmp: Path) -> Path:
    (tmp / "db").mkdir()
    conf = tmp / "slapd.conf"
    conf.write_text(f"""
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {tmp}/slapd.pid
database mdb
maxsize 104857600
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PASSWORD}
directory {tmp}/db
overlay memberof
""")
    check = subprocess.run(["slaptest", "-f", str(conf), "-u"], capture_output=True, text=True, timeout=30,
                           env={**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin"})
    if check.returncode != 0:
        raise RuntimeError(f"slaptest refused the config: {check.stderr}")
    return conf


@contextmanager
def running_slapd(tmp: Path) -> Iterator[Slapd]:
    conf = _config(tmp)
    port = free_port()
    url = f"ldap://127.0.0.1:{port}"
    log = (tmp / "slapd.log").open("w")
    # slapd forks into the background and writes its pid file once it listens.
    started = subprocess.run([SLAPD, "-f", str(conf), "-h", f"{url}/"], stdout=log, stderr=subprocess.STDOUT,
                             timeout=30)
    if started.returncode != 0:
        raise RuntimeError(f"slapd exited with {started.returncode}: {(tmp / 'slapd.log').read_text()}")
    pid_file = tmp / "slapd.pid"
    deadline = time.monotonic() + 20
    server = None
    while time.monotonic() < deadline:  # polling a real process's readiness
        if pid_file.exists():
            try:
                server = Slapd(url, int(pid_file.read_text().strip()))
                server.admin().unbind()
                break
            except (ValueError, ldap3.core.exceptions.LDAPException):
                server = None
        time.sleep(0.05)
    if server is None:
        raise TimeoutError(f"slapd did not answer on {url}: {(tmp / 'slapd.log').read_text()}")
    conn = server.admin()
    conn.add(SUFFIX, ["dcObject", "organization"], {"o": "Example Health", "dc": "example"})
    conn.unbind()
    try:
        yield server
    finally:
        with suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGTERM)
        log.close()

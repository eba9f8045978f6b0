"""What every benchmark shares: the machine's description, percentiles, the table and the JSON.

Each JSON file (issue 11) holds ``benchmark``, ``machine`` (cores, memory, Python, database, the load
average while it ran: this machine is shared, and how fast it ran Python just after), ``metrics``
(units in the names), ``floor`` (the same keys measured on a bare baseline in the same run, where one
applies) and ``targets`` (the bound from the issue, in the small grammar ``check_target`` reads), so a
run can be checked against its targets in a few lines.
"""

from __future__ import annotations

import gc
import json
import operator
import os
import platform
import statistics
import subprocess
import timeit
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def node_env(url: str, port: int) -> dict[str, str]:
    """A benchmark's ``carerelay serve``: its database and HTTP port, warnings only, a throwaway attachment
    key, and no MLLP, TAP, SNPP or pager-mail listener (the benchmark does not use them)."""
    return {"CARERELAY_DATABASE_URL": url, "CARERELAY_PORT": str(port), "CARERELAY_LOG_LEVEL": "WARNING",
            "CARERELAY_MLLP_PORT": "0", "CARERELAY_TAP_PORT": "0", "CARERELAY_SNPP_PORT": "0",
            "CARERELAY_PAGER_SMTP_PORT": "0", "CARERELAY_ATTACHMENT_KEYS": "b1:" + "A" * 43 + "="}


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def python_loop_us() -> float:
    """How fast this machine runs Python right now: ``sum(range(1000))`` in µs, best of five. Machines sold
    as the same 2 vCPUs measured 10–18 µs, and one machine moved between 10 and 15 within an hour, with
    every CPU-per-message figure moving with it; a run's figures are read against this one."""
    return round(min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6, 2)


def machine(database: str, load_before: float | None = None) -> dict[str, Any]:
    try:
        with open("/proc/meminfo") as f:
            mem_kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration):
        mem_kib = 0
    box: dict[str, Any] = {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "database": database,
        "load_avg_1m_after": load_average(),
        "python_loop_us_after": python_loop_us(),
    }
    if load_before is not None:
        box["load_avg_1m_before"] = load_before
    return box


def stop(process: subprocess.Popen[str], timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it is still draining a backlog: a server that was overloaded on purpose
    may hold thousands of queued requests, and must be gone before its PostgreSQL schema is dropped."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process: what work costs, less blurred by a busy machine than wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident memory of a process now (VmRSS), in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summarize_ms(samples_s: list[float], prefix: str) -> dict[str, float]:
    if not samples_s:
        return {f"{prefix}_p50_ms": float("nan"), f"{prefix}_p99_ms": float("nan"), f"{prefix}_max_ms": float("nan")}
    ms = [s * 1000 for s in samples_s]
    return {
        f"{prefix}_p50_ms": round(statistics.median(ms), 4),
        f"{prefix}_p99_ms": round(percentile(ms, 99), 4),
        f"{prefix}_max_ms": round(max(ms), 4),
    }


def check_target(target: str, value: float, floor: float | None) -> bool | None:
    """``"< 50"``, ``">= 1000 and >= floor/3"``, ``"< 10 and <= 3*floor"``; None if it cannot tell."""
    verdict = True
    for clause in target.split(" and "):
        op, _, bound_text = clause.strip().partition(" ")
        if op not in _OPS:
            return None
        bound_text = bound_text.strip()
        if "floor" in bound_text:
            if floor is None:
                return None
            if bound_text.startswith("floor/"):
                bound = floor / float(bound_text.split("/", 1)[1])
            elif bound_text.endswith("*floor"):
                bound = floor * float(bound_text.split("*", 1)[0])
            else:
                return None
        else:
            try:
                bound = float(bound_text.split()[0])
            except (ValueError, IndexError):
                return None
        verdict = verdict and _OPS[op](value, bound)
    return verdict


def report(name: str, *, database: str, metrics: dict[str, float], floor: dict[str, float],
           targets: dict[str, str], notes: str = "", load_before: float | None = None) -> dict[str, Any]:
    box = machine(database, load_before)
    load = (f"load average (1 min) {box.get('load_avg_1m_before', '?')} before, {box['load_avg_1m_after']} after; "
            f"sum(range(1000)) {box['python_loop_us_after']} µs")
    result: dict[str, Any] = {"benchmark": name, "machine": box, "metrics": metrics, "floor": floor,
                              "targets": targets, "notes": f"{notes} [{load}]".strip()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{name} on {database} ({box['cores']} cores, {box['memory_gib']} GiB, Python {box['python']}; {load})")
    print(f"{'metric':<38}{'value':>12}{'floor':>12}{'ratio':>9}  target")
    for key, value in metrics.items():
        base = floor.get(key)
        ratio = f"{value / base:.1f}x" if base else ""
        print(f"{key:<38}{value:>12}{'' if base is None else base:>12}{ratio:>9}  {targets.get(key, '')}")
    return result


def table(names: list[str] | None = None) -> list[str]:
    """One line per target of every result file: our figure, the floor, the ratio, met or not."""
    lines = [f"{'benchmark':<28}{'metric':<36}{'ours':>12}{'floor':>12}{'ratio':>9}  {'target':<26}{'met':<5}load"]
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        if names is not None and data["benchmark"] not in names:
            continue
        load = data["machine"].get("load_avg_1m_after", "")
        keys = list(data["targets"]) or list(data["metrics"])[:2]
        for key in keys:
            value = data["metrics"].get(key)
            if value is None:
                continue
            base = data["floor"].get(key)
            ratio = f"{value / base:.1f}x" if base else ""
            target = data["targets"].get(key, "")
            met = check_target(target, value, base) if target else None
            mark = {True: "yes", False: "NO", None: ""}[met]
            lines.append(f"{data['benchmark']:<28}{key:<36}{value:>12}{'' if base is None else base:>12}{ratio:>9}  "
                         f"{target:<26}{mark:<5}{load}")
    return lines


@contextmanager
def no_collector_pauses() -> Iterator[None]:
    """The load generator's own garbage collector off while it measures. Its full collections walk every
    pending request and timestamp (90–130 ms with 5,000 sends in flight on a 2-vCPU machine): meanwhile
    nothing is sent and no arrival is timed, so the server was charged a latency spike it never had.
    What the run allocates is collected afterwards."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


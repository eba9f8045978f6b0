"""What every benchmark shares: the machine's description, percentiles, the table and the JSON.

Each JSON file holds ``benchmark``, ``machine``, ``metrics`` (units in the names), ``floor`` (the
same keys measured on a bare baseline in the same run, where one applies) and ``targets`` (the
bound from the issue), so a run can be checked against its targets in a few lines.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine(database: str) -> dict[str, Any]:
    try:
        with open("/proc/meminfo") as f:
            mem_kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration):
        mem_kib = 0
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "database": database,
    }


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summarize_ms(samples_s: list[float], prefix: str) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        f"{prefix}_p50_ms": round(statistics.median(ms), 4),
        f"{prefix}_p99_ms": round(percentile(ms, 99), 4),
        f"{prefix}_max_ms": round(max(ms), 4),
    }


def report(name: str, *, database: str, metrics: dict[str, float], floor: dict[str, float],
           targets: dict[str, str], notes: str = "") -> dict[str, Any]:
    box = machine(database)
    result: dict[str, Any] = {"benchmark": name, "machine": box, "metrics": metrics, "floor": floor,
                              "targets": targets, "notes": notes}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{name} on {database} ({box['cores']} cores, {box['memory_gib']} GiB, Python {box['python']})")
    print(f"{'metric':<34}{'value':>12}{'floor':>12}{'ratio':>9}  target")
    for key, value in metrics.items():
        base = floor.get(key)
        ratio = f"{value / base:.1f}x" if base else ""
        print(f"{key:<34}{value:>12}{'' if base is None else base:>12}{ratio:>9}  {targets.get(key, '')}")
    return result

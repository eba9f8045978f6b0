"""What a run showed: how fast each flow was and whether the platform kept its clinical promises.

Latency is the real time the services took per item (p50/p95/p99 by nearest rank, in ms). Safety:

- every critical or STAT alert was acknowledged within its policy's first wait, or escalated (a next
  step, a repeat, the fallback) within that wait plus ``GRACE`` — target 100%;
- no alert reached nobody: every one was received by at least one person's device (one its recipients'
  own rules hold past the end of the run is not judged) — target 0;
- no message was lost: each of its recipients' devices received it — target 0;
- no timer failed, no item of the day was refused or failed, every bed reached the nurse its board
  named after each shift change, every on-call role reached someone every 15 minutes, and every address
  a paging rule can send a unit's calls to exists — target 0.

A run with no critical alert at all proves nothing and misses the target too.
"""

from __future__ import annotations

import math
import os
import platform
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from carerelay.simulation.facts import AlertFact, Facts
from carerelay.simulation.runner import Run
from carerelay.simulation.workload import FLOWS

CRITICAL_PRIORITIES = frozenset({"critical", "stat"})
GRACE = timedelta(seconds=1)
EXTRA_FLOWS = ("escalation_steps", "responses", "boards")
LISTED = 20
"""Ids and lines kept in the printed table; the JSON has every one."""


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest rank: the smallest value with at least ``pct`` percent of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


@dataclass(frozen=True)
class FlowStats:
    flow: str
    offered: int | None
    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def flow_stats(flow: str, seconds: Sequence[float], offered: int | None = None) -> FlowStats:
    return FlowStats(flow, offered, len(seconds), _ms(percentile(seconds, 50)), _ms(percentile(seconds, 95)),
                     _ms(percentile(seconds, 99)), _ms(max(seconds, default=None)))


def within_policy(alert: AlertFact) -> bool:
    deadline = alert.created_at + alert.first_wait
    if alert.acknowledged_at is not None and alert.acknowledged_at <= deadline:
        return True
    return alert.escalated_at is not None and alert.escalated_at <= deadline + GRACE


def is_critical(alert: AlertFact) -> bool:
    return alert.priority in CRITICAL_PRIORITIES


@dataclass(frozen=True)
class Safety:
    critical_alerts: int
    handled_within_policy: int
    late: list[int]
    not_yet_due: list[int]
    reached_nobody: list[int]
    lost_messages: list[int]
    timer_failures: list[str]
    errors: list[str]
    bed_mismatches: list[str]
    coverage_gaps: list[str]
    unresolvable: list[str]

    @property
    def handled_share(self) -> float | None:
        judged = self.critical_alerts - len(self.not_yet_due)
        return self.handled_within_policy / judged if judged else None

    def misses(self) -> list[str]:
        out = []
        if self.handled_share is None:
            out.append("no critical alert was raised: nothing was checked")
        elif self.handled_share < 1:
            out.append(f"{len(self.late)} critical alert(s) neither acknowledged nor escalated within policy time")
        for name, found in (("alert(s) reached nobody", self.reached_nobody), ("message(s) lost", self.lost_messages),
                            ("timer failure(s)", self.timer_failures), ("refused or failed item(s)", self.errors),
                            ("bed(s) not reaching their shift's nurse", self.bed_mismatches),
                            ("on-call gap(s)", self.coverage_gaps),
                            ("paging address(es) that do not exist", self.unresolvable)):
            if found:
                out.append(f"{len(found)} {name}")
        return out

    @property
    def met(self) -> bool:
        return not self.misses()


def safety(facts: Facts, run: Run) -> Safety:
    now = run.finished_at or run.options.end
    critical = [a for a in facts.alerts if is_critical(a)]
    pending = [a.id for a in critical if a.acknowledged_at is None and a.created_at + a.first_wait > now]
    judged = [a for a in critical if a.id not in set(pending)]
    return Safety(
        critical_alerts=len(critical), handled_within_policy=sum(1 for a in judged if within_policy(a)),
        late=[a.id for a in judged if not within_policy(a)], not_yet_due=pending,
        reached_nobody=[a.id for a in facts.alerts if (a.devices == 0 or a.recipients == 0)
                        and not (a.held_until is not None and a.held_until > now)],
        lost_messages=facts.lost_messages, timer_failures=facts.timer_failures, errors=list(run.errors),
        bed_mismatches=facts.bed_mismatches, coverage_gaps=facts.coverage_gaps, unresolvable=facts.unresolvable)


def _seconds_to_ack(alert: AlertFact) -> float | None:
    if alert.acknowledged_at is None:
        return None
    return (alert.acknowledged_at - alert.created_at).total_seconds()


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def by_kind(alerts: Sequence[AlertFact]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[AlertFact]] = defaultdict(list)
    for alert in alerts:
        groups[alert.kind].append(alert)
    out = {}
    for kind in sorted(groups):
        rows = groups[kind]
        waits = [s for s in (_seconds_to_ack(a) for a in rows) if s is not None]
        out[kind] = {"raised": len(rows), "critical_or_stat": sum(1 for a in rows if is_critical(a)),
                     "acknowledged": len(waits), "escalated": sum(1 for a in rows if a.escalated_at is not None),
                     "open_at_end": sum(1 for a in rows if a.status == "open"),
                     "ack_p50_s": _round(percentile(waits, 50)), "ack_p95_s": _round(percentile(waits, 95))}
    return out


def hourly(alerts: Sequence[AlertFact], start: datetime, hours: float, tz: ZoneInfo) -> list[dict[str, Any]]:
    """Per simulated hour (labelled in local time: the repeated autumn hour shows twice)."""
    buckets: dict[int, list[AlertFact]] = defaultdict(list)
    for alert in alerts:
        index = int((alert.created_at - start).total_seconds() // 3600)
        if 0 <= index < math.ceil(hours):
            buckets[index].append(alert)
    out = []
    for index in range(math.ceil(hours)):
        rows = buckets[index]
        waits = [s for s in (_seconds_to_ack(a) for a in rows) if s is not None]
        begins = start + timedelta(hours=index)
        out.append({"starts_at": begins.isoformat(), "label": f"{begins.astimezone(tz):%H:%M %Z}",
                    "alerts": len(rows), "critical_or_stat": sum(1 for a in rows if is_critical(a)),
                    "ack_p50_s": _round(percentile(waits, 50)), "ack_p95_s": _round(percentile(waits, 95))})
    return out


def machine(database: str) -> dict[str, Any]:
    return {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "database": database, "load_avg_1m": round(os.getloadavg()[0], 2)}


@dataclass
class Report:
    run: Run
    facts: Facts
    safety: Safety
    flows: list[FlowStats]
    database: str

    @property
    def met(self) -> bool:
        return self.safety.met

    def as_json(self) -> dict[str, Any]:
        options, run, facts, safety = self.run.options, self.run, self.facts, self.safety
        tz = ZoneInfo(run.hospital.zone)
        critical = [a for a in facts.alerts if is_critical(a)]
        return {
            "simulation": {
                "start": options.start.isoformat(), "start_local": f"{options.start.astimezone(tz):%Y-%m-%d %H:%M %Z}",
                "end": options.end.isoformat(), "finished_at": run.finished_at.isoformat() if run.finished_at else None,
                "hours": options.hours, "beds": len(run.hospital.beds), "seed": options.seed, "speed": options.speed,
                "no_answer_share": options.no_answer_share, "site_timezone": run.hospital.zone,
                "wall_seconds": round(run.wall_seconds, 1), "behind_seconds": round(run.behind_seconds, 1),
            },
            "machine": machine(self.database),
            "flows": {f.flow: {k: v for k, v in f.__dict__.items() if k != "flow"} for f in self.flows},
            "safety": {
                "met": safety.met, "misses": safety.misses(),
                "critical_alerts": safety.critical_alerts, "handled_within_policy": safety.handled_within_policy,
                "handled_share": safety.handled_share, "target_share": 1.0, "late": safety.late,
                "not_yet_due": safety.not_yet_due, "reached_nobody": safety.reached_nobody,
                "lost_messages": safety.lost_messages, "timer_failures": safety.timer_failures,
                "errors": safety.errors, "bed_mismatches": safety.bed_mismatches,
                "coverage_gaps": safety.coverage_gaps, "unresolvable_addresses": safety.unresolvable,
                "critical_escalated": sum(1 for a in critical if a.escalated_at is not None),
                "critical_acknowledged_first_step": sum(
                    1 for a in critical if a.acknowledged_at is not None
                    and a.acknowledged_at <= a.created_at + a.first_wait),
            },
            "alerts": {"raised": len(facts.alerts), "by_kind": by_kind(facts.alerts),
                       "steps_reaching_no_one": facts.no_one_steps, "empty_fallbacks": facts.empty_fallbacks,
                       "held_by_personal_rules": [
                           {"id": a.id, "until": f"{a.held_until.astimezone(tz):%Y-%m-%d %H:%M %Z}"}
                           for a in facts.alerts if a.held_until is not None],
                       "open_at_end": [a.id for a in facts.alerts if a.status == "open"]},
            "messages": {"sent": facts.messages, "needing_ack": facts.messages_needing_ack,
                         "receipts": facts.receipts, "read": facts.receipts_read},
            "timers_fired": dict(sorted(run.timers_fired.items())),
            "handovers": [{"unit": h.unit, "change_at": h.change_at.isoformat(),
                           "local": f"{h.change_at.astimezone(ZoneInfo(run.hospital.zones[h.unit])):%Y-%m-%d %H:%M %Z}",
                           "ended": h.ended, "renewed": h.renewed, "continuing": h.continuing,
                           "unassigned_beds": list(h.unassigned_beds)}
                          for h in facts.handovers if h.unit in run.hospital.zones],
            "hourly": hourly(facts.alerts, options.start, options.hours, tz),
        }


def build_report(*, run: Run, facts: Facts, database: str) -> Report:
    offered = Counter({flow: run.workload.count(flow) for flow in FLOWS})
    flows = [flow_stats(flow, run.latencies.get(flow, []), offered[flow]) for flow in FLOWS]
    flows += [flow_stats(flow, run.latencies.get(flow, [])) for flow in EXTRA_FLOWS]
    return Report(run=run, facts=facts, safety=safety(facts, run), flows=flows, database=database)

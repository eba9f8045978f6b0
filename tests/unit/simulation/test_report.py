"""The report's arithmetic: nearest-rank percentiles, "within policy time", and when a run fails CI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from carerelay.simulation.clinicians import Devices
from carerelay.simulation.facts import AlertFact, Facts
from carerelay.simulation.hospital import Hospital
from carerelay.simulation.report import flow_stats, hourly, percentile, safety, within_policy
from carerelay.simulation.runner import Options, Run
from carerelay.simulation.workload import Workload

RAISED = datetime(2026, 10, 31, 18, 0, tzinfo=UTC)


def _alert(n: int = 1, *, priority: str = "critical", ack: float | None = None, escalated: float | None = None,
           wait: float = 5, devices: int = 1, recipients: int = 1, at: datetime = RAISED) -> AlertFact:
    return AlertFact(id=n, kind="critical_result", priority=priority, created_at=at,
                     status="open" if ack is None else "acknowledged",
                     acknowledged_at=None if ack is None else at + timedelta(minutes=ack),
                     first_wait=timedelta(minutes=wait),
                     escalated_at=None if escalated is None else at + timedelta(minutes=escalated),
                     recipients=recipients, devices=devices, run_state="active")


def _run(errors: list[str] | None = None) -> Run:
    hospital = Hospital(zone="America/Chicago", beds=(), zones={}, teams={}, attendings={})
    run = Run(options=Options(start=RAISED - timedelta(hours=1), hours=2), hospital=hospital, workload=Workload(),
              devices=Devices(), errors=errors or [])
    run.finished_at = RAISED + timedelta(hours=2)
    return run


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (50.0, 95.0, 99.0)
    assert percentile([0.2, 0.1, 0.3], 50) == 0.2
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
    stats = flow_stats("adt", [0.010, 0.020, 0.030, 0.040], offered=5)
    assert (stats.count, stats.offered, stats.p50_ms, stats.p99_ms, stats.max_ms) == (4, 5, 20.0, 40.0, 40.0)
    assert flow_stats("telemetry", []).p95_ms is None


@pytest.mark.parametrize(("ack", "escalated", "handled"), [
    (4.9, None, True),      # acknowledged within the first wait
    (5.0, None, True),      # at the deadline itself
    (9.0, 5.0, True),       # late answer, but the next step went out on time
    (None, 5.0 + 0.9 / 60, True),  # within the grace second
    (None, 5.0 + 2 / 60, False),   # the next step two seconds late
    (None, 1.0, True),      # rejected at once: escalated early
    (7.0, None, False),     # acknowledged late and never escalated: a silent escalation
    (None, None, False),
])
def test_within_policy(ack: float | None, escalated: float | None, handled: bool) -> None:
    assert within_policy(_alert(ack=ack, escalated=escalated)) is handled


def test_a_run_meets_its_targets_only_when_every_check_is_clean() -> None:
    facts = Facts(alerts=[_alert(1, ack=2), _alert(2, escalated=5), _alert(3, priority="routine", ack=30)])
    verdict = safety(facts, _run())
    assert (verdict.critical_alerts, verdict.handled_within_policy, verdict.handled_share) == (2, 2, 1.0)
    assert verdict.met and verdict.misses() == []

    facts.alerts.append(_alert(4, ack=9))
    facts.alerts.append(_alert(5, priority="routine", devices=0))
    facts.lost_messages.append(77)
    verdict = safety(facts, _run(errors=["results: HL7 message 9 failed"]))
    assert verdict.late == [4] and verdict.reached_nobody == [5] and not verdict.met
    assert verdict.handled_share == pytest.approx(2 / 3)
    assert verdict.misses() == ["1 critical alert(s) neither acknowledged nor escalated within policy time",
                                "1 alert(s) reached nobody", "1 message(s) lost", "1 refused or failed item(s)"]


def test_a_run_without_critical_alerts_proves_nothing() -> None:
    verdict = safety(Facts(alerts=[_alert(priority="urgent", ack=1)]), _run())
    assert verdict.handled_share is None and not verdict.met
    assert verdict.misses() == ["no critical alert was raised: nothing was checked"]


def test_an_alert_whose_first_wait_has_not_passed_is_not_judged() -> None:
    run = _run()
    assert run.finished_at is not None
    young = _alert(1, at=run.finished_at - timedelta(minutes=1))
    verdict = safety(Facts(alerts=[young, _alert(2, ack=1)]), run)
    assert verdict.not_yet_due == [1] and verdict.handled_share == 1.0 and verdict.met


def test_hours_are_labelled_in_local_time_through_the_repeated_hour() -> None:
    start = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)  # 00:00 CDT; the clocks go back at 02:00 CDT
    alerts = [_alert(1, at=start + timedelta(minutes=70), ack=2), _alert(2, at=start + timedelta(minutes=130))]
    rows = hourly(alerts, start, 3, ZoneInfo("America/Chicago"))
    assert [r["label"] for r in rows] == ["00:00 CDT", "01:00 CDT", "01:00 CST"]
    assert [r["alerts"] for r in rows] == [0, 1, 1]
    assert rows[1]["ack_p50_s"] == 120.0 and rows[2]["ack_p50_s"] is None

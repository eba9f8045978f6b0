"""Prometheus metrics shared by every adapter."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "carerelay_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "carerelay_http_request_seconds", "HTTP request latency by route", ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)

TIMERS_FIRED = Counter("carerelay_timers_fired_total", "Durable timers fired, by kind", ["kind"], registry=REGISTRY)
TIMER_LAG = Histogram(
    "carerelay_timer_lag_seconds", "Fire time minus due time of durable timers",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)

NOBODY_TO_REACH = Counter(
    "carerelay_alert_nobody_to_reach_total", "Escalation steps whose address resolved to no one", registry=REGISTRY
)

AUDITOR_FINDINGS = Gauge(
    "carerelay_auditor_findings", "Problems the escalation auditor found on its last run, by check", ["check"],
    registry=REGISTRY,
)
AUDITOR_RUNS = Counter("carerelay_auditor_runs_total", "Escalation auditor runs", registry=REGISTRY)
AUDITOR_LAST_RUN = Gauge(
    "carerelay_auditor_last_run_timestamp_seconds", "When the escalation auditor last ran (Unix time)",
    registry=REGISTRY,
)
TIMERS_OVERDUE = Gauge(
    "carerelay_timers_overdue", "Durable timers past due by more than the auditor's bound at its last run",
    registry=REGISTRY,
)
TIMER_MAX_LAG = Gauge(
    "carerelay_timer_max_lag_seconds", "Largest fire-minus-due time the auditor saw since its previous run",
    registry=REGISTRY,
)
SOCKET_FRAMES = Counter(
    "carerelay_socket_frames_total", "Event frames sent on WebSockets, by where the socket got them: handed over "
    "by this node's commit, or read from the database (catching up, a gap, another node's commit)", ["source"],
    registry=REGISTRY,
)
SQLITE_WRITER_BUSY = Counter(
    "carerelay_sqlite_writer_busy_seconds_total", "Time SQLite's writer thread was held by units of work and "
    "their group COMMITs: its rate near 1 means the node is at its write ceiling", registry=REGISTRY,
)
SQLITE_WRITER_UNITS = Counter(
    "carerelay_sqlite_writer_units_total", "Units of work SQLite's writer thread served", registry=REGISTRY,
)
SQLITE_GROUP_COMMITS = Counter(
    "carerelay_sqlite_group_commits_total", "COMMITs of SQLite's write groups (units per COMMIT: the units' "
    "rate over this one)", registry=REGISTRY,
)

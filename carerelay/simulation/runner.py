"""Moving the simulated clock and driving the real services with the day's work.

One clock (a ``FakeClock``) is "now" for every service. The runner takes whatever comes next — a due
durable timer (escalation steps, hand-over checks, the auditor, exactly as the worker of
``carerelay serve`` fires them: ``jobs.fire_one``, one transaction each), an item of the workload, or
something a simulated person does — sets the clock to its instant and runs it through the same
service the network path uses: HL7 through the message store and the processor (``receive_messages``
then ``process_pending``, as the MLLP listener does) and the hand-off intake, WCTP through
``wctp.service.handle_request`` (POST /wctp's handler), messages through ``messaging.send_message``,
boards through ``staffing.assign_many``. Due timers go first at an instant: an escalation is never
late because something else happened at the same moment.

Run fast (``speed`` 0) the clock jumps from one instant to the next; run live, each instant waits for
its moment on the wall clock, ``speed`` simulated seconds per real one. Either way the latency of each
item is the real time its services took, measured around them.

After the window the day's work stops and the clinicians and timers go on until every alert has been
answered (at most ``DRAIN``), so an alert raised at 11:59 is judged on what its policy promised too.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

# Imported for the timer handlers they register, so every timer kind a server's worker fires fires here.
import carerelay.alerts.digest
import carerelay.integrations.exports.runner
import carerelay.jobs.worker  # noqa: F401
from carerelay.alerts import service as alerts
from carerelay.alerts.intake import take_handoffs
from carerelay.alerts.models import Alert, AlertStatus
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock, FakeClock
from carerelay.core.db import Database
from carerelay.core.errors import CarerelayError, Conflict, Invalid
from carerelay.core.migrate import upgrade
from carerelay.demo import SITES
from carerelay.directory import service as directory
from carerelay.escalation.auditor import AuditorConfig, ensure_scheduled
from carerelay.integrations.hl7 import store
from carerelay.integrations.hl7.feeds import Feed
from carerelay.integrations.wctp import service as wctp
from carerelay.integrations.wctp.model import SUCCESS
from carerelay.jobs import service as jobs
from carerelay.jobs.models import Timer
from carerelay.messaging import service as messaging
from carerelay.messaging.models import ConversationKind, Priority
from carerelay.messaging.retention import schedule_daily_purge
from carerelay.patients import service as patients
from carerelay.patients.service import ResultPolicy
from carerelay.simulation.clinicians import Answer, Behaviour, Devices, People
from carerelay.simulation.hospital import MAIN_SITE, Hospital, build, post_board
from carerelay.simulation.workload import BoardIn, Event, Hl7In, MessageIn, PageIn, Rates, Workload, generate

DRAIN = timedelta(hours=2)
SITE_ZONE = next(tz for code, _, tz in SITES if code == MAIN_SITE)
DEFAULT_START = "2026-10-31T12:00"
"""Noon the day before the clocks go back in Chicago: the 19:00 hand-over, a 13-hour night, the 07:00 one."""
STAT_PRIORITIES = ("S", "STAT")
PEER = "simulation"

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Options:
    start: datetime
    hours: float = 24.0
    beds: int = 300
    seed: int = 1
    speed: float = 0.0
    no_answer_share: float = 0.1
    rates: Rates = field(default_factory=Rates)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=self.hours)


def start_instant(text: str, zone: str = SITE_ZONE) -> datetime:
    """``2026-10-31T12:00`` is the site's wall clock (the first of a repeated hour); an offset is kept."""
    try:
        given = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{text!r} is not a date and time (e.g. {DEFAULT_START})", field="start") from None
    if given.tzinfo is None:
        given = given.replace(tzinfo=ZoneInfo(zone))
    return given.astimezone(UTC)


class Pacer:
    """Live runs: wait until the wall clock reaches a simulated instant; fast runs (speed 0) never wait."""

    def __init__(self, *, speed: float, start: datetime, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.speed, self.start = speed, start
        self.monotonic, self.sleep = monotonic, sleep
        self.began = monotonic()
        self.behind_seconds = 0.0

    def wait_until(self, at: datetime) -> None:
        if self.speed <= 0:
            return
        due = self.began + (at - self.start).total_seconds() / self.speed
        ahead = due - self.monotonic()
        if ahead > 0:
            self.sleep(ahead)
        else:
            self.behind_seconds = max(self.behind_seconds, -ahead)


@dataclass
class Run:
    options: Options
    hospital: Hospital
    workload: Workload
    devices: Devices
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    timers_fired: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    finished_at: datetime | None = None
    wall_seconds: float = 0.0
    behind_seconds: float = 0.0


def check_empty(db: Database) -> None:
    """A simulation writes a hospital's worth of synthetic patients, alerts and pages: never into a
    database that already holds people (someone's real installation, or an earlier run)."""
    if "people" not in inspect(db.engine).get_table_names():
        return
    with db.read_only() as session:
        if directory.count_people(session=session):
            raise Conflict("the database already holds people: a simulation runs only on an empty database "
                           "(a new SQLite file or an empty PostgreSQL database or schema)", field="database_url")


class _Runner:
    def __init__(self, db: Database, run: Run, clock: FakeClock, progress: Progress | None) -> None:
        self.db, self.run, self.clock = db, run, clock
        self.progress = progress
        self.options = run.options
        self.people = People(Behaviour(no_answer_share=self.options.no_answer_share, seed=self.options.seed),
                             run.hospital.operators)
        zone = run.hospital.zone
        self.feeds = {"adt": Feed(name="adt", port=0, listen=False, timezone=zone, message_types=("ADT^*",)),
                      "lab": Feed(name="lab", port=0, listen=False, timezone=zone, message_types=("ORU^R01",))}
        self.policy = ResultPolicy()
        self.wctp = wctp.ServerConfig()
        self.queue: list[tuple[datetime, int, Callable[[], None]]] = []
        self.order = itertools.count()
        self.fired_kind = ""
        self.registry = jobs.Registry({kind: self._noting(kind, handler)
                                       for kind, handler in jobs.HANDLERS.handlers.items()})
        self.total_minutes = round(self.options.hours * 60)
        self.shown_minute = -1
        self.tz = ZoneInfo(zone)
        self.pacer = Pacer(speed=self.options.speed, start=self.options.start)

    def _noting(self, kind: str, handler: jobs.Handler) -> jobs.Handler:
        def noted(session: Session, clock: Clock, timer: Timer) -> None:
            self.fired_kind = kind
            handler(session, clock, timer)

        return noted

    # ------------------------------------------------------------ the loop

    def push(self, at: datetime, action: Callable[[], None]) -> None:
        heapq.heappush(self.queue, (at, next(self.order), action))

    def start(self) -> None:
        ensure_scheduled(db=self.db, clock=self.clock, config=AuditorConfig())
        schedule_daily_purge(self.db, self.clock)
        for event in self.run.workload.events:
            self.push(event.at, self._work(event))

    def loop(self, until: datetime, *, draining: bool = False) -> None:
        while True:
            with self.db.read_only() as session:
                due = jobs.next_due(session=session)
                settled = draining and not session.execute(
                    select(func.count()).select_from(Alert).where(Alert.status == AlertStatus.OPEN)).scalar()
            if draining and settled:
                return
            candidates = [t for t in (due, self.queue[0][0] if self.queue else None) if t is not None]
            if not candidates:
                return
            at = max(min(candidates), self.clock.now())
            if at > until:
                return
            self.pacer.wait_until(at)
            self.clock.set(at)
            if due is not None and due <= at:
                if not self._fire():
                    raise RuntimeError(f"a timer was due at {due:%H:%M:%S} UTC but none could be taken")
            else:
                heapq.heappop(self.queue)[2]()
            self._react()
            self._show()

    def _fire(self) -> bool:
        started = time.perf_counter()
        self.fired_kind = ""
        if not jobs.fire_one(db=self.db, clock=self.clock, registry=self.registry):
            return False
        elapsed = time.perf_counter() - started
        kind = self.fired_kind or "unhandled"
        self.run.timers_fired[kind] += 1
        if kind == "escalation.step":
            self.run.latencies["escalation_steps"].append(elapsed)
        return True

    def _react(self) -> None:
        for person_id, kind, payload in self.run.devices.take():
            for answer in self.people.react(self.clock.now(), person_id, kind, payload):
                self.push(answer.at, self._answer(answer))

    def _show(self) -> None:
        minute = int((self.clock.now() - self.options.start).total_seconds() // 60)
        if self.progress is None or minute == self.shown_minute:
            return
        self.shown_minute = minute
        local = self.clock.now().astimezone(self.tz)
        self.progress(f"simulating {local:%a %H:%M %Z}", min(minute, self.total_minutes), self.total_minutes)

    def _timed(self, flow: str, work: Callable[[], None], also: str | None = None) -> None:
        started = time.perf_counter()
        try:
            work()
        except CarerelayError as exc:
            self.run.errors.append(f"{self.clock.now():%Y-%m-%d %H:%M:%S} UTC {flow}: {exc.message}")
            return
        elapsed = time.perf_counter() - started
        self.run.latencies[flow].append(elapsed)
        if also is not None:
            self.run.latencies[also].append(elapsed)

    # ------------------------------------------------------------ the day's work

    def _work(self, event: Event) -> Callable[[], None]:
        item = event.item
        if isinstance(item, Hl7In):
            return lambda: self._timed(item.flow, lambda: self._hl7(item),
                                       also="critical_results" if item.critical else None)
        if isinstance(item, PageIn):
            return lambda: self._timed(item.flow, lambda: self._page(item))
        if isinstance(item, MessageIn):
            return lambda: self._timed("messages", lambda: self._message(item))
        assert isinstance(item, BoardIn)
        return lambda: self._timed("boards", lambda: self._board(item))

    def _fail(self, what: str) -> None:
        raise CarerelayError(what)

    def _hl7(self, item: Hl7In) -> None:
        with self.db.unit_of_work() as session:
            [receipt] = store.receive_messages(session=session, clock=self.clock,
                                               items=[store.Inbound(self.feeds[item.feed], item.raw, PEER)])
        if receipt.code != "AA":
            self._fail(f"HL7 message refused ({receipt.code}): {receipt.text}")
        with self.db.unit_of_work() as session:
            done = store.process_pending(session=session, clock=self.clock, feeds=self.feeds, policy=self.policy,
                                         stat_priorities=STAT_PRIORITIES, limit=8)
        for outcome in done:
            if outcome.status == "error":
                self._fail(f"HL7 message {outcome.message_id} failed: {outcome.note}")
        if item.flow == "results":
            take_handoffs(db=self.db, clock=self.clock)

    def _page(self, item: PageIn) -> None:
        with self.db.unit_of_work() as session:
            answer = wctp.handle_request(session=session, clock=self.clock, raw=item.raw, peer=PEER, config=self.wctp)
        if answer.code != SUCCESS:
            self._fail(f"WCTP {answer.operation} refused with {answer.code} (paging message "
                       f"{answer.paging_message_id})")

    def _message(self, item: MessageIn) -> None:
        actor = item.sender.actor
        with self.db.unit_of_work() as session:
            patient = patients.find_patient(session=session, ref=item.mrn) if item.mrn else None
            try:
                conversation = messaging.create_conversation(
                    session=session, clock=self.clock, actor=actor, kind=ConversationKind.ADDRESS,
                    address=item.address, patient_id=patient.id if patient is not None else None)
            except CarerelayError as exc:
                raise CarerelayError(f"{item.sender.username} could not write to {item.address}: "
                                     f"{exc.message}") from None
            messaging.send_message(session=session, clock=self.clock, actor=actor, request=messaging.SendRequest(
                conversation_id=conversation.id, text=item.text, priority=Priority(item.priority),
                needs_ack=item.needs_ack))

    def _board(self, item: BoardIn) -> None:
        post_board(db=self.db, clock=self.clock, hospital=self.run.hospital, unit=item.unit)

    # ------------------------------------------------------------ what people do

    def _answer(self, answer: Answer) -> Callable[[], None]:
        flow = "messages" if answer.kind == "reply" else "responses"
        return lambda: self._timed(flow, lambda: self._do(answer))

    def _do(self, answer: Answer) -> None:
        person = self.run.hospital.people.get(answer.person_id)
        actor = person.actor if person is not None else self._actor_of(answer.person_id)
        with self.db.unit_of_work() as session:
            if answer.kind == "delivered" and answer.alert_id is not None:
                alerts.record_receipts(session=session, clock=self.clock, actor=actor, alert_ids=[answer.alert_id],
                                       state="delivered")
            elif answer.kind in ("respond", "ack_message", "readback") and answer.alert_id is not None:
                alert = alerts.access_alert(session=session, actor=actor, alert_id=answer.alert_id)
                if answer.kind == "readback":
                    if alert.status == "acknowledged" and alert.acknowledged_by == answer.person_id:
                        alerts.record_readback(session=session, clock=self.clock, actor=actor, alert_id=alert.id,
                                               text="Value read back to the lab; patient assessed, plan in the EMR.")
                elif alert.status != "open":
                    return
                elif answer.kind == "ack_message" and answer.message_id is not None:
                    messaging.mark_receipts(session=session, clock=self.clock, actor=actor,
                                            message_ids=[answer.message_id], state="acknowledged")
                elif answer.choice:
                    alerts.respond(session=session, clock=self.clock, actor=actor, alert_id=alert.id,
                                   choice=answer.choice)
                else:
                    alerts.acknowledge(session=session, clock=self.clock, actor=actor, alert_id=alert.id)
            elif answer.kind == "read" and answer.message_id is not None:
                messaging.mark_receipts(session=session, clock=self.clock, actor=actor,
                                        message_ids=[answer.message_id], state="read")
            elif answer.kind == "reply" and answer.conversation_id is not None:
                messaging.send_message(session=session, clock=self.clock, actor=actor, request=messaging.SendRequest(
                    conversation_id=answer.conversation_id, text=answer.text))

    def _actor_of(self, person_id: int) -> Actor:
        """Someone outside the rosters (an administrator reached by an auditor finding): their roles."""
        with self.db.read_only() as session:
            person = directory.get_person(session=session, person_id=person_id)
            roles = directory.roles_of(session=session, person_ids=[person_id]).get(person_id, [])
        return Actor(person_id=person_id, username=person.username, roles=frozenset(roles))


def simulate(*, db: Database, options: Options, actor: Actor, progress: Progress | None = None) -> Run:
    """Build the hospital on an empty database, play the day, let every escalation finish."""
    check_empty(db)
    upgrade(db.engine)
    note = progress or (lambda stage, done, total: None)
    note("building the hospital", 0, 0)
    hospital = build(db=db, start=options.start, until=options.end + DRAIN, beds=options.beds, actor=actor)
    workload = generate(hospital=hospital, start=options.start, hours=options.hours, seed=options.seed,
                        rates=options.rates)
    run = Run(options=options, hospital=hospital, workload=workload, devices=Devices())
    db.after_commit.append(run.devices.on_commit)
    clock = FakeClock(options.start)
    runner = _Runner(db, run, clock, progress)
    began = time.perf_counter()
    try:
        runner.start()
        runner.loop(options.end)
        note("letting every escalation finish", runner.total_minutes, runner.total_minutes)
        runner.loop(options.end + DRAIN, draining=True)
    finally:
        db.after_commit.remove(run.devices.on_commit)
    run.finished_at = clock.now()
    run.wall_seconds = time.perf_counter() - began
    run.behind_seconds = runner.pacer.behind_seconds
    return run

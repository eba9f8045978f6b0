"""The web client in a real browser: Chromium (Playwright) against a real `carerelay serve` process.

One server and one browser for the module; each person signs in once, through the sign-in form, in
a browser context of their own (their own cookies, like two windows on two machines). The server's
clock is a test-only file clock (CARERELAY_ENVIRONMENT=test), so the shift change and the escalation
waits happen when the test moves the clock, not by waiting. Screenshots of the main pages at phone
and desktop widths go to tests/artifacts/screenshots/ (gitignored).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import Engine, func, select

from carerelay.alerts.models import Alert, AlertEvent
from carerelay.core.actor import cli_actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database, make_engine
from carerelay.core.migrate import upgrade
from carerelay.demo import DEMO_PASSWORD, load_demo
from carerelay.directory.models import Person
from carerelay.escalation import service as escalation
from carerelay.integrations.hl7 import store
from carerelay.integrations.hl7.feeds import Feed
from carerelay.jobs.models import Timer
from carerelay.patients.models import Patient
from carerelay.patients.service import ResultPolicy
from carerelay.scheduling import lookup
from carerelay.scheduling.models import Assignment
from carerelay.web.launch import build_token
from tests.browser.test_sso_browser import ARGS, CHROMIUM
from tests.conftest import TEST_KEYS
from tests.hl7support import SAMPLES, sample
from tests.servers import ServerProcess, free_port, running_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium; .ci/run "
                                                "does this in CI)"),
]

T0 = datetime(2026, 11, 24, 12, 50, tzinfo=UTC)  # 06:50 in Chicago: the night shift is still on
SHIFT_CHANGE = datetime(2026, 11, 24, 13, 5, tzinfo=UTC)  # 07:05: the day shift has taken over
KEY = "browser-test-launch-key-0123456789abcdef"
MRN = "MRN1001"
SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}
TIMEOUT = 15_000


@dataclass
class Stack:
    server: ServerProcess
    engine: Engine
    clock_file: Path
    browser: Any
    people: dict[str, int]
    patient_id: int
    pages: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.base_url

    def set_clock(self, instant: datetime) -> None:
        """Moves the server's time: written beside the file, then renamed over it (never half-read)."""
        staged = self.clock_file.with_suffix(".next")
        staged.write_text(instant.isoformat())
        os.replace(staged, self.clock_file)

    def page_of(self, username: str) -> Any:
        """This person's window, signed in through the form the first time."""
        if username not in self.pages:
            context = self.browser.new_context(viewport=DESKTOP)
            page = context.new_page()
            page.set_default_timeout(TIMEOUT)
            page.goto(f"{self.url}/sign-in")
            page.get_by_label("User name").fill(username)
            page.get_by_label("Password").fill(DEMO_PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{self.url}/home")
            self.pages[username] = page
        return self.pages[username]

    def count(self, query: Any) -> int:
        with Database(self.engine).read_only() as session:
            return int(session.execute(query).scalar_one())


def _on_call(engine: Engine, code: str, at: datetime) -> str:
    with Database(engine).read_only() as session:
        assignment = session.execute(select(Assignment).where(Assignment.code == code)).scalar_one()
        [slot] = lookup.who_is_on(session=session, at=at, assignment_id=assignment.id)
        assert slot.person_id is not None
        return session.get_one(Person, slot.person_id).username


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("web-browser")
    url = f"sqlite:///{tmp / 'web.db'}"
    engine = make_engine(url)
    upgrade(engine)
    clock = FakeClock(T0 - timedelta(hours=1))
    db = Database(engine)
    with db.unit_of_work() as session:
        load_demo(session=session, clock=clock, actor=cli_actor("test-setup"))
        people = dict(session.execute(select(Person.username, Person.id)).all())
        escalation.create_policy(session=session, clock=clock, actor=cli_actor("test-setup"), data={
            "name": "pages (browser test)", "alert_kind": "page", "department_id": None, "priority": None,
            "steps": [{"address": "target:", "wait_minutes": 2},
                      {"address": f"person:{people['lcuddy']}", "wait_minutes": 30}],
            "repeat": 0, "fallback_address": None})
    with db.unit_of_work() as session:  # through the HL7 store, so the message log has something to show
        feed = Feed(name="default", port=0, timezone="America/Chicago")
        store.receive_messages(session=session, clock=clock, items=[
            store.Inbound(feed=feed, raw=sample("adt_a01_admit.hl7"), peer="10.20.0.5"),
            store.Inbound(feed=feed, raw=sample("adt_a01_admit.hl7").replace(b"MSG00001", b"MSG00099")
                          .replace(b"MRN1001^^^MAINHOSP^MR", b""), peer="10.20.0.5")])
        store.process_pending(session=session, clock=clock, feeds={"default": feed}, policy=ResultPolicy(),
                              stat_priorities=("S", "STAT"))
        patient_id = session.execute(select(Patient.id).where(Patient.mrn == MRN)).scalar_one()
    clock_file = tmp / "now"
    clock_file.write_text(T0.isoformat())
    with running_server(url, tmp, port=free_port(), CARERELAY_ENVIRONMENT="test",
                        CARERELAY_TEST_CLOCK_FILE=str(clock_file), CARERELAY_EMBED_LAUNCH_KEY=KEY,
                        CARERELAY_EPIC_HAIKU_URL="epichaiku://open?patient={epic_patient_id}",
                        CARERELAY_ATTACHMENT_KEYS=TEST_KEYS) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield Stack(server, engine, clock_file, browser, people, patient_id)
        finally:
            browser.close()
            engine.dispose()


def _until(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """Polls a real server's effect in its database; only waits, never times anything."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def shoot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def test_sign_in(stack: Stack) -> None:
    from playwright.sync_api import expect

    context = stack.browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(f"{stack.url}/inbox")
    expect(page).to_have_url(f"{stack.url}/sign-in?next=%2Finbox")
    shoot(page, "sign-in")
    page.get_by_label("User name").fill("cnurse")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("sign-in failed")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{stack.url}/inbox")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "open")
    context.close()
    home = stack.page_of("cnurse")
    expect(home.locator("h1")).to_have_text("Signed in as Carol Nurse, RN")


def test_message_arrives_live_and_the_read_receipt_comes_back(stack: Stack) -> None:
    from playwright.sync_api import expect

    nurse, doctor = stack.page_of("cnurse"), stack.page_of("jwilson")
    doctor.goto(f"{stack.url}/inbox")
    expect(doctor.locator("#live-status")).to_have_attribute("data-state", "open")
    doctor.evaluate("window.__notReloaded = true")

    nurse.goto(f"{stack.url}/compose?to=person:{stack.people['jwilson']}&patient_id={stack.patient_id}")
    nurse.get_by_label("Message", exact=True).fill("Pt in 412-B: BP 82/50, <b>please</b> review")
    nurse.get_by_label("Priority").select_option("urgent")
    nurse.get_by_role("button", name="Send").click()
    nurse.wait_for_url("**/c/*")
    receipt = nurse.locator(f'li[data-receipt="{stack.people["jwilson"]}"]')
    expect(receipt).to_have_attribute("data-state", re.compile("^(sent|delivered)$"))

    row = doctor.locator("#conversation-list a", has_text="Carol Nurse, RN")
    expect(row).to_contain_text("Pt in 412-B: BP 82/50, <b>please</b> review")
    expect(row.locator(".unread-count")).to_be_visible()
    assert doctor.evaluate("window.__notReloaded === true"), "the inbox reloaded instead of updating"
    assert doctor.evaluate("document.body.dataset.lastSound") == "urgent"
    expect(receipt).to_have_attribute("data-state", "delivered")
    shoot(doctor, "inbox")

    row.click()
    expect(doctor.locator(".msg .text").first).to_have_text("Pt in 412-B: BP 82/50, <b>please</b> review")
    expect(receipt).to_have_attribute("data-state", "read")
    assert nurse.evaluate("document.querySelector('#thread') !== null")

    doctor.evaluate("window.__notReloaded = true")
    nurse.get_by_label("Message", exact=True).fill("thanks")
    nurse.get_by_role("button", name="Send").click()
    expect(doctor.locator(".msg .text").last).to_have_text("thanks")
    assert doctor.evaluate("window.__notReloaded === true"), "the thread reloaded instead of updating"
    expect(nurse.locator(".msg.mine").last.locator("li[data-receipt]")).to_have_attribute("data-state", "read")
    expect(doctor.get_by_role("link", name="Open in Haiku")).to_have_attribute(
        "href", "epichaiku://open?patient=MRN1001")
    shoot(doctor, "thread")
    shoot(nurse, "thread-sender")
    nurse.goto(f"{stack.url}/compose?q=cardiology&patient_id={stack.patient_id}")
    expect(nurse.get_by_text("Who is on call for…")).to_be_visible()
    shoot(nurse, "compose")


def test_operator_board_after_a_shift_change(stack: Stack) -> None:
    from playwright.sync_api import expect

    night = _on_call(stack.engine, "HOSP-NIGHT", T0)
    day = _on_call(stack.engine, "HOSP-DAY", SHIFT_CHANGE)
    with Database(stack.engine).read_only() as session:
        night_name = session.execute(select(Person.display_name).where(Person.username == night)).scalar_one()
        day_name = session.execute(select(Person.display_name).where(Person.username == day)).scalar_one()
    operator = stack.page_of("ooperator")
    operator.goto(f"{stack.url}/board")
    hospital_medicine = operator.locator('section[data-department="HOSP"]')
    expect(hospital_medicine.locator("ul.now .name")).to_have_text([night_name])
    expect(hospital_medicine.locator("ul.next .name")).to_contain_text([day_name])
    shoot(operator, "board-before-shift-change")
    stack.set_clock(SHIFT_CHANGE)
    operator.reload()
    expect(hospital_medicine.locator("ul.now .name")).to_have_text([day_name])
    expect(operator.locator("#coverage-time")).to_contain_text("07:05")
    shoot(operator, "board")


def test_acknowledging_an_alert_stops_its_escalation(stack: Stack) -> None:
    from playwright.sync_api import expect

    stack.set_clock(SHIFT_CHANGE + timedelta(minutes=1))
    first, second = _on_call(stack.engine, "CARD-CALL1-DAY", SHIFT_CHANGE), \
        _on_call(stack.engine, "CARD-CALL2-DAY", SHIFT_CHANGE)
    cardiologist = stack.page_of(first)
    cardiologist.goto(f"{stack.url}/alerts")
    expect(cardiologist.locator("#live-status")).to_have_attribute("data-state", "open")
    cardiologist.evaluate("window.__notReloaded = true")

    operator = stack.page_of("ooperator")
    alert_ids = []
    for who in (first, second):
        operator.goto(f"{stack.url}/board")
        row = operator.locator(f'section[data-department="CARD"] ul.now li:has(a[href="/compose?to=person:'
                               f'{stack.people[who]}"])')
        row.locator("summary").click()
        row.get_by_role("textbox").fill(f"Call 4 West about 412-B ({who})")
        row.get_by_role("button", name="Send page").click()
        operator.wait_for_url("**/alerts/*")
        alert_ids.append(int(operator.url.rsplit("/", 1)[1]))
    acknowledged, ignored = alert_ids

    card = cardiologist.locator(f"#alert-{acknowledged}")
    expect(card).to_contain_text(f"Call 4 West about 412-B ({first})")
    expect(cardiologist.locator("#toasts .toast").first).to_contain_text("URGENT alert")
    assert cardiologist.evaluate("window.__notReloaded === true"), "the alert list reloaded instead of updating"
    shoot(cardiologist, "alerts")
    cardiologist.goto(f"{stack.url}/alerts/{acknowledged}")
    expect(cardiologist.locator("#escalation-state")).to_have_attribute("data-state", "active")
    cardiologist.get_by_role("button", name="Accept").click()
    expect(cardiologist.locator("#escalation-state")).to_have_attribute("data-state", "acknowledged")
    expect(cardiologist.locator('#trail li[data-kind="escalation_stopped"]')).to_be_visible()
    shoot(cardiologist, "alert")
    assert stack.count(select(func.count()).select_from(Timer).where(
        Timer.key.startswith(f"alert:{acknowledged}:"), Timer.fired_at.is_(None), Timer.cancelled_at.is_(None))) == 0

    stack.set_clock(SHIFT_CHANGE + timedelta(minutes=10))

    def notified(alert_id: int) -> int:
        return stack.count(select(func.count()).select_from(AlertEvent).where(
            AlertEvent.alert_id == alert_id, AlertEvent.kind == "notified"))

    _until(lambda: notified(ignored) == 2, "the unacknowledged page to reach its second step")
    assert notified(acknowledged) == 1
    operator.goto(f"{stack.url}/alerts/{ignored}")
    expect(operator.locator('#trail li[data-kind="notified"]')).to_have_count(2)
    operator.goto(f"{stack.url}/alerts/{acknowledged}")
    expect(operator.locator('#trail li[data-kind="notified"]')).to_have_count(1)


def test_publish_a_schedule(stack: Stack) -> None:
    from playwright.sync_api import expect

    scheduler = stack.page_of("sscheduler")
    scheduler.goto(f"{stack.url}/schedules")
    scheduler.get_by_label("First day").fill("2026-12-01")
    scheduler.get_by_label("Last day").fill("2026-12-31")
    scheduler.get_by_label("Name").fill("Cardiology December")
    scheduler.get_by_role("button", name="Create draft").click()
    expect(scheduler.locator("#schedule-status")).to_have_text("draft")
    scheduler.get_by_role("link", name="Assign Cardiology On Call on 2026-12-01").first.click()
    scheduler.get_by_label("Person").select_option(label="Dr. James Wilson")
    scheduler.get_by_role("button", name="Save").click()
    expect(scheduler.locator("table.schedule a[data-slot]", has_text="Wilson")).to_have_count(1)
    scheduler.get_by_role("button", name="Publish").click()
    expect(scheduler.get_by_role("status")).to_contain_text("Published version 1")
    expect(scheduler.locator("#schedule-status")).to_have_text("published v1")
    shoot(scheduler, "schedule-month")
    scheduler.get_by_role("link", name="Week").click()
    shoot(scheduler, "schedule-week")


def test_embedded_mode_with_a_good_and_a_bad_token(stack: Stack) -> None:
    from playwright.sync_api import expect

    now = datetime.fromisoformat(stack.clock_file.read_text())
    context = stack.browser.new_context(viewport={"width": 420, "height": 800})
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        bad = build_token(key="not-the-key-" + "x" * 30, ehr_username="GHOUSE", mrn=MRN,
                          expires_at=now + timedelta(minutes=2))
        page.goto(f"{stack.url}/embed?token={bad}")
        expect(page.locator("#refusal")).to_contain_text("signature does not match")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "embed-refused-phone.png"), full_page=True)
        expired = build_token(key=KEY, ehr_username="GHOUSE", mrn=MRN, expires_at=now - timedelta(seconds=1))
        page.goto(f"{stack.url}/embed?token={expired}")
        expect(page.locator("#refusal")).to_contain_text("expired")
        good = build_token(key=KEY, ehr_username="GHOUSE", mrn=MRN, expires_at=now + timedelta(minutes=2))
        page.goto(f"{stack.url}/embed?token={good}")
        page.wait_for_url(f"{stack.url}/embed/patients/{stack.patient_id}")
        expect(page.locator("h1")).to_have_text("DOE, JANE")
        expect(page.locator("nav.main")).to_contain_text("This patient")
        expect(page.get_by_role("link", name="Open in Haiku")).to_be_visible()
        page.screenshot(path=str(SHOTS / "embed-patient-phone.png"), full_page=True)
        page.goto(f"{stack.url}/embed?token={good}")
        expect(page.locator("#refusal")).to_contain_text("already used")
    finally:
        context.close()


def test_charge_nurse_assigns_a_bed_and_its_nurse_call_reaches_that_nurse(stack: Stack) -> None:
    """Issue 12's demo on the board: Dana Whitaker tries to give 4W-412-B to Kwame Asante (refused
    inline: Carol Nurse has it), ends Carol's assignment (the occupied bed turns unassigned), assigns
    Kwame; another board follows without a reload, and the shared nurse-call sample rings Kwame."""
    from playwright.sync_api import expect

    stack.set_clock(SHIFT_CHANGE + timedelta(minutes=20))  # 07:25: Dana's day shift, Carol Nurse on 412-B
    nurse = stack.page_of("kasante")
    nurse.goto(f"{stack.url}/alerts")
    watcher = stack.page_of("admin")
    watcher.goto(f"{stack.url}/staffing/4W")
    for page in (nurse, watcher):
        expect(page.locator("#live-status")).to_have_attribute("data-state", "open")
        page.evaluate("window.__notReloaded = true")

    charge = stack.page_of("dwhitaker")
    charge.get_by_role("navigation", name="Main").get_by_role("link", name="Unit board").click()
    charge.wait_for_url(f"{stack.url}/staffing/4W")
    bed = charge.locator("#bed-412-B")
    expect(bed.locator('td[data-label="Patient"]')).to_contain_text("DOE, JANE")
    expect(bed.locator('td[data-label="This shift"]')).to_contain_text("Carol Nurse, RN")
    bed.get_by_role("link", name="Assign someone to 4W-412-B, this shift").click()
    person = charge.get_by_label("Person")
    expect(person).to_be_focused()
    expect(charge.get_by_label("Where")).to_have_value("412/B")
    person.select_option(label="Kwame Asante, RN")
    charge.get_by_role("button", name="Assign", exact=True).click()
    expect(charge.locator("#assign-error")).to_contain_text("4W-412-B already has Carol Nurse, RN as primary nurse")
    expect(charge.get_by_label("Where")).to_be_focused()
    shoot(charge, "charge-board-refused")

    bed.get_by_role("button", name="End Carol Nurse, RN as primary nurse of 4W-412-B").click()
    expect(charge.locator("#notice")).to_contain_text("Ended Carol Nurse, RN as primary nurse of 4W-412-B")
    expect(bed).to_have_class(re.compile(r"\bunassigned\b"))
    expect(charge.locator("#unassigned")).to_contain_text("1 occupied bed has no primary nurse this shift")
    expect(watcher.locator("#bed-412-B")).to_have_class(re.compile(r"\bunassigned\b"))
    shoot(charge, "charge-board-unassigned")

    bed.get_by_role("link", name="Assign someone to 4W-412-B, this shift").click()
    expect(person).to_be_focused()
    person.select_option(label="Kwame Asante, RN")
    charge.get_by_role("button", name="Assign", exact=True).click()
    expect(charge.locator("#notice")).to_contain_text("Assigned Kwame Asante, RN as primary nurse of 4W-412-B")
    expect(bed.locator('td[data-label="This shift"]')).to_contain_text("Kwame Asante, RN")
    expect(bed).not_to_have_class(re.compile(r"\bunassigned\b"))
    expect(watcher.locator('#bed-412-B td[data-label="This shift"]')).to_contain_text("Kwame Asante, RN")
    assert watcher.evaluate("window.__notReloaded === true"), "the other board reloaded instead of updating"
    shoot(charge, "charge-board")

    answer = httpx.post(f"{stack.url}/wctp", content=(SAMPLES.parent / "wctp" / "submit_nursecall_bathroom.xml")
                        .read_bytes(), headers={"Content-Type": "text/xml"}, timeout=10)
    assert answer.status_code == 200 and b'successCode="200"' in answer.content, answer.text
    expect(nurse.locator("#toasts .toast").first).to_contain_text("BATHROOM CALL 4W 412-B")
    expect(nurse.locator(".alert", has_text="BATHROOM CALL 4W 412-B")).to_be_visible()
    assert nurse.evaluate("window.__notReloaded === true"), "the alert list reloaded instead of updating"
    with Database(stack.engine).read_only() as session:
        reached = session.execute(select(AlertEvent.person_id).join(Alert, Alert.id == AlertEvent.alert_id).where(
            Alert.title == "BATHROOM CALL 4W 412-B", AlertEvent.kind == "notified")).scalars().all()
    assert reached == [stack.people["kasante"]]


MAIN_PAGES = {
    "cnurse": ["/home", "/directory?q=house", "/oncall", "/patients/{patient}", "/patients?unit=4W",
               "/me/schedule", "/me/rules"],
    "iadmin": ["/admin/hl7", "/admin/hl7/messages", "/admin/escalation", "/admin/routing", "/admin/users?q=lee"],
    "ooperator": ["/page"],
    "admin": ["/staffing"],
    "ccompliance": ["/compliance/audit?action=auth.sign_in", "/compliance/verify?run=1",
                    "/compliance/discovery?text=review", "/compliance/reports/tta?kind=all&days=7"],
}


def test_screenshots_of_the_main_pages(stack: Stack) -> None:
    """Not an assertion of looks: the pictures are for a person to check by eye after a page changes."""
    for username, paths in MAIN_PAGES.items():
        page = stack.page_of(username)
        for path in paths:
            url = path.replace("{patient}", str(stack.patient_id))
            response = page.goto(f"{stack.url}{url}")
            assert response is not None and response.status == 200, url
            name = url.strip("/").split("?")[0].replace("/", "-").replace(str(stack.patient_id), "patient") or "home"
            shoot(page, f"{username}-{name}")

"""The `doctor` DAG's trigger form as a person uses it (issue #24 items 4, 5, 6, 10): a real headless
Chromium on Airflow 3.3's own trigger form, on the real local stack (tests/e2e/conftest.py).

- an empty form: Trigger is enabled, and the run handles what waits in the inbox;
- a failure the doctor already escalated, named in the form: re-diagnosed on request, said in the
  doctor run's note;
- a task instance that did not fail, named by hand: the note says why it was not diagnosed;
- a dry run named by DAG id and task id alone (its latest failed try): the note gives the verdict,
  the reasons and who would have been told, the loopback SMTP and Slack receivers get nothing and
  the failed task instance's note is untouched;
- the doctor run's mapped instances carry their failure's label in Airflow's mapped-task view.
"""

from __future__ import annotations

import re
import time
from urllib.parse import quote

import pytest

from scripts.demo import api_for, case_for, kb_for, sink_messages, trigger, wait_until
from tests.e2e.conftest import VIEW_TIMEOUT_MS, base_url

pytestmark = pytest.mark.e2e

DAG, TASK = "example_orders_report", "build_report"  # a permanent failure: the doctor escalates it
DONE = {"success", "failed"}


def _doctor_run_ids(api) -> set[str]:
    path = "/api/v2/dags/doctor/dagRuns?order_by=-run_after&limit=50"
    return {r["dag_run_id"] for r in api.request_json("GET", path)["dag_runs"]}


def _trigger_from_form(page, stack, api, fields: dict, *, dry_run: bool = False) -> str:
    """Open the doctor DAG's Trigger form, fill `fields` (Param name -> text), press Trigger; return
    the new doctor run's id."""
    from playwright.sync_api import expect

    before = _doctor_run_ids(api)
    page.goto(f"{base_url(stack)}/dags/doctor")
    page.get_by_role("button", name=re.compile("Trigger")).first.click(timeout=VIEW_TIMEOUT_MS)
    dialog = page.get_by_role("dialog")
    dialog.locator("#element_dag_id").wait_for(timeout=VIEW_TIMEOUT_MS)
    for name, value in fields.items():
        dialog.locator(f"#element_{name}").fill(str(value))
    if dry_run:
        # A switch: its hidden checkbox carries the field's name; the switch's root is its parent.
        switch = dialog.locator("input[name='element_dry_run']").locator("xpath=..")
        switch.click()
        expect(switch).to_have_attribute("data-state", "checked")
    submit = dialog.get_by_role("button", name="Trigger", exact=True)
    expect(submit).to_be_enabled()  # every Param may stay empty (issue #24 item 6)
    submit.click()
    new = wait_until(lambda: _doctor_run_ids(api) - before, 30, "the form's doctor run")
    assert len(new) == 1
    return next(iter(new))


def _note_when_done(api, run_id: str, timeout: float = 300) -> str:
    """The doctor run's note once the run has ended."""
    run = wait_until(
        lambda: (r := api.get_dag_run("doctor", run_id))["state"] in DONE and r,
        timeout,
        f"doctor run {run_id}",
    )
    return run.get("note") or ""


def _messages_about(stack, run_id: str, since: float) -> list[dict]:
    mails, posts = sink_messages(stack, since)
    return [m for m in mails + posts if run_id in str(m)]


def test_the_doctor_trigger_form(stack, page, forget_run):
    from playwright.sync_api import expect

    api, kb = api_for(stack), kb_for(stack)
    report = trigger(api, DAG)
    forget_run.append(report)
    escalated = wait_until(
        lambda: case_for(kb, DAG, report, TASK), 300, "the doctor to escalate build_report"
    )
    assert escalated["decision"] == "escalate"
    _note_when_done(api, escalated["doctor_run_id"])  # the run that escalated it has ended

    # -- the empty form: Trigger is enabled and the run handles what waits in the inbox -----------
    empty = _trigger_from_form(page, stack, api, {})
    assert api.get_dag_run("doctor", empty)["conf"].get("dag_id") in (None, "")
    note = _note_when_done(api, empty)
    assert note.startswith("airflow-doctor"), note
    assert "params were not used" not in note

    # -- an already escalated failure named in the form: re-diagnosed on request -------------------
    again = _trigger_from_form(page, stack, api, {"dag_id": DAG, "run_id": report, "task_id": TASK})
    note = _note_when_done(api, again)
    assert "airflow-doctor handled 1 failure(s)" in note and f"{DAG}.{TASK} try 1" in note, note
    assert f"handled by doctor run {escalated['doctor_run_id']}" in note
    assert "re-diagnosed here on request" in note
    assert case_for(kb, DAG, report, TASK)["doctor_run_id"] == again

    # -- a task instance that did not fail: the note says why it is not diagnosed -----------------
    ok = api.trigger_dag_run("doctor", {"dag_id": DAG, "run_id": report, "task_id": "fetch_orders"})
    note = _note_when_done(api, ok["dag_run_id"])
    assert (
        "fetch_orders try 1 was not diagnosed: the task instance is no longer failed (it is success" in note
    )

    # -- a dry run by DAG id and task id alone: the verdict in the note, nothing sent -------------
    ti_note = api.get_task_instance(DAG, report, TASK).get("note")
    since = time.time()
    dry = _trigger_from_form(page, stack, api, {"dag_id": DAG, "task_id": TASK}, dry_run=True)
    assert api.get_dag_run("doctor", dry)["conf"]["dry_run"] is True
    note = _note_when_done(api, dry)
    assert note.startswith("airflow-doctor dry run: nothing was sent, cleared, noted or recorded."), note
    assert f"{DAG}.{TASK} try 1: would leave it failed for a person (escalate). Why: " in note
    assert "Would tell: " in note and "by email, Slack connection doctor_slack" in note
    time.sleep(5)  # a message would have been sent before summarize_run wrote the note
    assert _messages_about(stack, report, since) == []
    assert api.get_task_instance(DAG, report, TASK).get("note") == ti_note

    # -- the doctor run's mapped instances carry their failure's label ----------------------------
    for stage in ("gate_on_confidence", "escalate", "record_case"):
        page.goto(
            f"{base_url(stack)}/dags/doctor/runs/{quote(again, safe='')}/tasks/handle_failures.{stage}/mapped"
        )
        expect(page.get_by_text(f"{DAG}.{TASK}").first).to_be_visible(timeout=VIEW_TIMEOUT_MS)

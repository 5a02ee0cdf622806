"""The Doctor UI as a person uses it: a real headless Chromium (Debian's package, driven by
Playwright) on the Airflow 3.3 UI of the real local stack (tests/e2e/conftest.py).

Opens the Doctor tab of a healed and of an escalated failure and the Doctor dashboard inside
Airflow's own UI, reads what a person reads there, presses "permanent" and sees the next identical
failure escalated with that reason, then undoes the answer (the stack is shared with other modules).

On a stack of its own whose confidence threshold puts the flaky warehouse in the grey zone: the
approval request in Airflow's Required Actions view at 1280 px (Approve reachable, no horizontal
scroll), the Doctor tab while the approval waits (diagnosis, reasons, since when, link), and the
tabs and dashboard after one retry is approved and another rejected (who decided, by name).

With DOCTOR_UI_SCREENSHOTS=<folder> (`make screenshots`) it also writes the views as PNG files.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from scripts.demo import api_for, case_for, kb_for, trigger, wait_until
from tests.e2e.conftest import VIEW_TIMEOUT_MS, base_url, open_tab

# A stack of its own whose confidence threshold (0.99) puts the flaky warehouse in the grey zone.
from tests.e2e.test_remediation import grey_zone  # noqa: F401, F811 - a fixture

pytestmark = pytest.mark.e2e


def _shots() -> Path | None:
    folder = os.environ.get("DOCTOR_UI_SCREENSHOTS")
    if not folder:
        return None
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _healed(kb, run: str) -> dict:
    """The case of the flaky warehouse's run once its retry (the doctor's or an approved one) succeeded."""

    def healed():
        case = case_for(kb, "example_flaky_warehouse", run, "load_orders")
        return case if case and case["outcome"] == "succeeded" else None

    return wait_until(healed, 300, f"the retry of load_orders in {run} to succeed")


def _shot(page, name: str) -> None:
    folder = _shots()
    if folder:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def _standalone_shot(page, stack, path: str, name: str) -> None:
    """The plugin view alone at full height (the README's screenshots)."""
    folder = _shots()
    if folder:
        page.goto(f"{base_url(stack)}{path}")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_doctor_tab_dashboard_and_a_permanent_answer(stack, page):
    from playwright.sync_api import expect

    api, kb = api_for(stack), kb_for(stack)
    flaky = trigger(api, "example_flaky_warehouse")
    report = trigger(api, "example_orders_report")
    healed = _healed(kb, flaky)
    escalated = wait_until(
        lambda: case_for(kb, "example_orders_report", report, "build_report"),
        300,
        "the doctor to escalate build_report",
    )
    assert healed["decision"] == "auto_retry" and escalated["decision"] == "escalate"

    # -- the healed failure's tab -------------------------------------------------------------------
    tab = open_tab(page, stack, "example_flaky_warehouse", flaky, "load_orders")
    expect(tab.get_by_text("Auto-retried by the doctor: the retry succeeded")).to_be_visible()
    expect(tab.get_by_text("Primary error:")).to_be_visible()
    expect(tab.locator("pre.primary")).to_contain_text(
        re.compile("server closed the connection|terminating connection due to administrator command")
    )
    expect(tab.get_by_role("heading", name="Diagnosis")).to_be_visible()
    expect(tab.locator("dl.facts")).to_contain_text(str(healed["error_class"]))
    expect(tab.locator("strong.verdict")).to_have_text("auto_retry")
    for reason in healed["reasons"]:
        expect(tab.locator("ul.reasons")).to_contain_text(reason)
    expect(tab.locator("table.timeline")).to_contain_text("the retried try succeeded")
    expect(tab.get_by_role("link", name=f"doctor run {healed['doctor_run_id']}")).to_be_visible()
    expect(tab.locator("span.operator")).to_have_text("Python (@task)")  # `@task`, not "-"
    expect(tab.locator("table.verdicts")).to_contain_text("the doctor's gate")
    expect(tab.get_by_role("button", name="Transient — retry it now")).to_have_count(0)  # healed already
    steps = tab.locator("table.timeline tr").all_inner_texts()
    diagnosed = next(i for i, t in enumerate(steps) if "diagnosis (" in t)
    cleared = next(i for i, t in enumerate(steps) if "cleared for retry" in t)
    assert diagnosed < cleared, steps  # the diagnosis led to the clear: it comes first
    _shot(page, "tab-healed-in-airflow")

    # -- the escalated failure's tab --------------------------------------------------------------
    tab = open_tab(page, stack, "example_orders_report", report, "build_report")
    expect(tab.get_by_text("Escalated to a human: not retried.")).to_be_visible()
    expect(tab.locator("strong.verdict")).to_have_text("escalate")
    for reason in escalated["reasons"]:
        expect(tab.locator("ul.reasons")).to_contain_text(reason)
    expect(tab.locator("table.similar")).to_be_visible()
    # The diagnoser's opinion and the gate's verdict are two things, never one contradiction.
    expect(tab.locator("dd.opinion")).to_contain_text(re.compile("^(not )?transient, recommends "))
    expect(tab.locator("dd.gate")).to_contain_text("escalate, because: ")
    _shot(page, "tab-escalated-in-airflow")

    # -- the dashboard (nav) ----------------------------------------------------------------------
    page.goto(f"{base_url(stack)}/plugin/doctor_dashboard")
    board = page.frame_locator("iframe[src*='/doctor/dashboard']")
    board.get_by_role("heading", name=re.compile("^Doctor dashboard")).wait_for(timeout=VIEW_TIMEOUT_MS)
    seen = int(board.locator('[data-figure="failures_seen"]').inner_text())
    healed_n = int(board.locator('[data-figure="auto_healed"]').inner_text())
    escalated_n = int(board.locator('[data-figure="escalated"]').inner_text())
    assert seen >= 2 and healed_n >= 1 and escalated_n >= 1 and healed_n + escalated_n <= seen
    expect(board.locator("table.fingerprints")).to_contain_text(str(healed["error_class"]))
    expect(board.locator("table.health")).to_contain_text("knowledge base")
    # For a team lead: pages avoided and time saved, who is still waiting, what recurs, health.
    assert int(board.locator('[data-figure="pages_avoided"]').inner_text()) >= 1
    expect(board.locator('[data-figure="minutes_saved"]')).to_contain_text("min")
    expect(board.locator("table.escalations")).to_contain_text("example_orders_report.build_report")
    expect(board.locator("table.escalations a").first).to_have_attribute(
        "href", re.compile("/plugin/doctor$")
    )
    expect(board.locator("table.fingerprints code.error").first).to_contain_text(re.compile(r"\w"))
    expect(board.locator("table.fingerprints a").first).to_have_attribute(
        "href", re.compile("/plugin/doctor$")
    )
    expect(board.get_by_role("heading", name=re.compile("^Doctor health:"))).to_be_visible()
    expect(board.get_by_role("heading", name="Degraded")).to_have_count(0)
    # Chart.js drew both charts (a drawn canvas is no longer blank).
    for canvas in ("#chart-series", "#chart-tth"):
        assert board.locator(canvas).evaluate("c => c.toDataURL().length") > 3000
    _shot(page, "dashboard-in-airflow")
    _standalone_shot(page, stack, "/doctor/dashboard", "dashboard")
    _standalone_shot(
        page,
        stack,
        f"/doctor/tab?dag_id=example_orders_report&run_id={quote(report, safe='')}&task_id=build_report",
        "tab-escalated",
    )

    # -- "permanent": the next identical failure is escalated with that reason ---------------------
    tab = open_tab(page, stack, "example_flaky_warehouse", flaky, "load_orders")
    tab.get_by_role("button", name="Permanent — don't auto-retry this again").click()
    expect(tab.get_by_text("Recorded as permanent")).to_be_visible(timeout=VIEW_TIMEOUT_MS)
    expect(tab.locator("table.history")).to_contain_text(f"{stack.username} (human)")
    try:
        again = trigger(api, "example_flaky_warehouse")
        blocked = wait_until(
            lambda: case_for(kb, "example_flaky_warehouse", again, "load_orders"),
            300,
            "the doctor on the next failure",
        )
        reason = f"memory: a person said case {healed['id']} (same fingerprint) is permanent"
        assert blocked["decision"] == "escalate"
        assert reason in blocked["reasons"]
        tab = open_tab(page, stack, "example_flaky_warehouse", again, "load_orders")
        expect(tab.get_by_text("Escalated to a human: not retried.")).to_be_visible()
        expect(tab.locator("ul.reasons")).to_contain_text(reason)
        _shot(page, "tab-after-permanent-in-airflow")
        _standalone_shot(
            page,
            stack,
            f"/doctor/tab?dag_id=example_flaky_warehouse&run_id={quote(again, safe='')}&task_id=load_orders",
            "tab-after-permanent",
        )
    finally:
        # Undo, through the tab: the fingerprint heals again for the modules sharing this stack.
        tab = open_tab(page, stack, "example_flaky_warehouse", flaky, "load_orders")
        _standalone_shot(
            page,
            stack,
            f"/doctor/tab?dag_id=example_flaky_warehouse&run_id={quote(flaky, safe='')}&task_id=load_orders",
            "tab-healed",
        )
        tab = open_tab(page, stack, "example_flaky_warehouse", flaky, "load_orders")
        tab.get_by_role("button", name="Undo").click()
        expect(tab.locator("p.notice")).to_have_text("Undone.", timeout=VIEW_TIMEOUT_MS)
        expect(tab.locator("table.history")).to_contain_text(f"undone by {stack.username}")

    # -- after the Undo, the doctor heals the fingerprint again --------------------------------------
    # The escalation made on the undone answer is the newest case of the fingerprint; it holds only
    # the doctor's own decision and must not hide the retry that verifiably worked.
    after = trigger(api, "example_flaky_warehouse")
    healed_again = wait_until(
        lambda: case_for(kb, "example_flaky_warehouse", after, "load_orders"),
        300,
        "the doctor after the Undo",
    )
    assert healed_again["decision"] == "auto_retry", healed_again["reasons"]
    tab = open_tab(page, stack, "example_flaky_warehouse", after, "load_orders")
    expect(tab.locator("ul.reasons")).not_to_contain_text("is permanent")


# -- approvals: Required Actions at 1280 px, the waiting tab, approved and rejected ------------------

APPROVAL_TASK = "handle_failures.request_approval"


def _signed_in(browser, stack, width: int, height: int):
    token = httpx.post(
        f"{stack.api_url}/auth/token",
        json={"username": stack.username, "password": stack.password},
        timeout=30,
    ).json()["access_token"]
    context = browser.new_context(viewport={"width": width, "height": height})
    context.add_cookies([{"name": "_token", "value": token, "url": base_url(stack)}])
    return context, context.new_page()


def _pending_request(api, run: str) -> dict:
    """The doctor's approval request about a run of the flaky warehouse, once it waits for input."""

    def pending():
        details = api.list_hitl_details("doctor", "~", response_received=False)
        return next((d for d in details if run in (d.get("body") or "")), None)

    detail = wait_until(pending, 300, "an approval request")
    ti = detail["task_instance"]

    def awaiting_input():
        state = api.get_task_instance("doctor", ti["dag_run_id"], ti["task_id"], ti["map_index"]).get("state")
        return state if state in {"awaiting_input", "deferred"} else None

    wait_until(awaiting_input, 60, "the approval task to wait for input", poll=0.5)
    return detail


def _answer(api, detail: dict, option: str) -> None:
    ti = detail["task_instance"]
    time.sleep(3)  # a person never answers within a second (an instant answer can race the scheduler)
    api.update_hitl_detail("doctor", ti["dag_run_id"], ti["task_id"], ti["map_index"], [option])


def test_approvals_are_shown_truthfully_from_required_actions_to_the_dashboard(grey_zone, browser):  # noqa: F811
    from playwright.sync_api import expect

    stack = grey_zone
    api, kb = api_for(stack), kb_for(stack)
    context, page = _signed_in(browser, stack, 1280, 900)
    try:
        first = trigger(api, "example_flaky_warehouse")
        request = _pending_request(api, first)
        ti = request["task_instance"]

        # -- the Doctor tab while the approval waits ------------------------------------------------
        tab = open_tab(page, stack, "example_flaky_warehouse", first, "load_orders")
        expect(tab.locator("p.waiting")).to_contain_text("Waiting for approval since ")
        expect(tab.locator("p.waiting a")).to_have_attribute("href", re.compile("/required_actions$"))
        expect(tab.get_by_role("heading", name="Diagnosis")).to_be_visible()
        expect(tab.locator("dd.opinion")).to_contain_text("transient")
        expect(tab.locator("strong.verdict")).to_have_text("approval")
        expect(tab.locator("ul.reasons li").first).to_be_visible()
        _shot(page, "tab-waiting-approval-in-airflow")

        # -- Required Actions at 1280 px: the body wraps, Approve is on screen ------------------------
        page.goto(
            f"{base_url(stack)}/dags/doctor/runs/{quote(ti['dag_run_id'], safe='')}"
            f"/tasks/{quote(APPROVAL_TASK, safe='')}/mapped/{ti['map_index']}/required_actions"
        )
        approve = page.get_by_role("button", name="Approve")
        approve.wait_for(timeout=VIEW_TIMEOUT_MS)
        expect(page.get_by_text("Gate's verdict:")).to_be_visible()
        box = approve.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 1280, box
        # No horizontal scroll: not the page's, nor any scrolling box around the body or the button.
        scroll = page.evaluate(
            """(nodes) => {
                const out = [[document.documentElement.scrollWidth, document.documentElement.clientWidth]];
                for (const node of nodes) {
                    for (let e = node; e; e = e.parentElement) {
                        const x = getComputedStyle(e).overflowX;
                        if (x === "auto" || x === "scroll") out.push([e.scrollWidth, e.clientWidth]);
                    }
                }
                return out;
            }""",
            [page.get_by_text("Gate's verdict:").element_handle(), approve.element_handle()],
        )
        assert all(width <= client + 1 for width, client in scroll), f"horizontal scroll: {scroll}"
        body = page.get_by_text("Gate's verdict:").bounding_box()
        assert body and body["x"] + body["width"] <= 1280, body
        page.evaluate("() => window.scrollTo(0, 0)")
        _shot(page, "required-actions-1280")
        approve.scroll_into_view_if_needed()
        _shot(page, "required-actions-1280-buttons")
        _answer(api, request, "Approve")

        # -- a second failure, rejected --------------------------------------------------------------
        healed = _healed(kb, first)
        second = trigger(api, "example_flaky_warehouse")
        _answer(api, _pending_request(api, second), "Reject")
        rejected = wait_until(
            lambda: case_for(kb, "example_flaky_warehouse", second, "load_orders"), 300, "the rejected case"
        )
        assert healed["decision"] == "approval" and rejected["decision"] == "approval"

        tab = open_tab(page, stack, "example_flaky_warehouse", first, "load_orders")
        expect(tab.locator("p.verdict-banner")).to_contain_text(
            f"Approved by {stack.username} in Required Actions at "
        )
        expect(tab.locator("p.verdict-banner")).to_contain_text("the retry succeeded")
        expect(tab.locator("table.verdicts")).to_contain_text(f"{stack.username} in Required Actions")
        expect(tab.locator("table.verdicts")).to_contain_text("chose Approve")
        expect(tab.get_by_text("No decision recorded")).to_have_count(0)
        expect(tab.get_by_text("A person:")).to_have_count(0)
        _shot(page, "tab-approved-in-airflow")

        tab = open_tab(page, stack, "example_flaky_warehouse", second, "load_orders")
        expect(tab.locator("p.verdict-banner")).to_contain_text(
            f"Rejected by {stack.username} in Required Actions"
        )
        expect(tab.get_by_text("Sent for approval")).to_have_count(0)
        _shot(page, "tab-rejected-in-airflow")

        page.goto(f"{base_url(stack)}/plugin/doctor_dashboard")
        board = page.frame_locator("iframe[src*='/doctor/dashboard']")
        board.get_by_role("heading", name=re.compile("^Doctor dashboard")).wait_for(timeout=VIEW_TIMEOUT_MS)
        expect(board.locator('[data-figure="approvals"]')).to_have_text("2")
        expect(board.locator(".card", has=board.locator('[data-figure="approvals"]'))).to_contain_text(
            "1 approved (1 healed), 1 rejected"
        )
        expect(board.locator("table.fingerprints")).not_to_contain_text("not decided")
        _shot(page, "dashboard-approvals-in-airflow")
    finally:
        context.close()

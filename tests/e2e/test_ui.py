"""The Doctor UI as a person uses it: a real headless Chromium (Debian's package, driven by
Playwright) on the Airflow 3.3 UI of the real local stack (tests/e2e/conftest.py).

Opens the Doctor tab of a healed and of an escalated failure and the Doctor dashboard inside
Airflow's own UI, reads what a person reads there, presses "permanent" and sees the next identical
failure escalated with that reason, then undoes the answer (the stack is shared with other modules).

With DOCTOR_UI_SCREENSHOTS=<folder> (`make screenshots`) it also writes the views as PNG files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from scripts.demo import api_for, case_for, kb_for, trigger, wait_until
from tests.e2e.conftest import VIEW_TIMEOUT_MS, base_url

pytestmark = pytest.mark.e2e


def _shots() -> Path | None:
    folder = os.environ.get("DOCTOR_UI_SCREENSHOTS")
    if not folder:
        return None
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _open_tab(page, stack, dag_id: str, run_id: str, task_id: str):
    """Open the task instance's Doctor tab in Airflow's UI; return the tab's frame."""
    page.goto(
        f"{base_url(stack)}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
        f"/tasks/{quote(task_id, safe='')}/plugin/doctor"
    )
    frame = page.frame_locator("iframe[src*='/doctor/tab']")
    frame.get_by_role("heading", name=re.compile("^Doctor")).wait_for(timeout=VIEW_TIMEOUT_MS)
    return frame


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
    healed = wait_until(
        lambda: (
            (c := case_for(kb, "example_flaky_warehouse", flaky, "load_orders"))
            and c["outcome"] == "succeeded"
            and c
        ),
        300,
        "the doctor to heal load_orders",
    )
    escalated = wait_until(
        lambda: case_for(kb, "example_orders_report", report, "build_report"),
        300,
        "the doctor to escalate build_report",
    )
    assert healed["decision"] == "auto_retry" and escalated["decision"] == "escalate"

    # -- the healed failure's tab -------------------------------------------------------------------
    tab = _open_tab(page, stack, "example_flaky_warehouse", flaky, "load_orders")
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
    _shot(page, "tab-healed-in-airflow")

    # -- the escalated failure's tab --------------------------------------------------------------
    tab = _open_tab(page, stack, "example_orders_report", report, "build_report")
    expect(tab.get_by_text("Escalated to a human: not retried.")).to_be_visible()
    expect(tab.locator("strong.verdict")).to_have_text("escalate")
    for reason in escalated["reasons"]:
        expect(tab.locator("ul.reasons")).to_contain_text(reason)
    expect(tab.locator("table.similar")).to_be_visible()
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
    tab = _open_tab(page, stack, "example_flaky_warehouse", flaky, "load_orders")
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
        tab = _open_tab(page, stack, "example_flaky_warehouse", again, "load_orders")
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
        tab = _open_tab(page, stack, "example_flaky_warehouse", flaky, "load_orders")
        _standalone_shot(
            page,
            stack,
            f"/doctor/tab?dag_id=example_flaky_warehouse&run_id={quote(flaky, safe='')}&task_id=load_orders",
            "tab-healed",
        )
        tab = _open_tab(page, stack, "example_flaky_warehouse", flaky, "load_orders")
        tab.get_by_role("button", name="Undo").click()
        expect(tab.locator("p.notice")).to_have_text("Undone.", timeout=VIEW_TIMEOUT_MS)
        expect(tab.locator("table.history")).to_contain_text(f"undone by {stack.username}")

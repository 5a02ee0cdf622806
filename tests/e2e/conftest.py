"""One real Airflow stack for every end-to-end test module (starting one costs about 20 s)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import psycopg2
import pytest

from scripts.demo import api_for, wait_for_dags
from scripts.stack import StackConfig, down, up
from tests.conftest import free_port

E2E_DAGS = [
    "doctor",
    "doctor_sweeper",
    "example_flaky_warehouse",
    "example_orders_report",
    "example_burst_failures",
    "example_oom_killed",
]


def stack_config(tmp_path_factory, name: str, **settings) -> StackConfig:
    """A StackConfig on a fresh state directory and free loopback ports, plus `settings`."""
    return StackConfig(
        state_dir=tmp_path_factory.mktemp(name),
        api_port=free_port(),
        pg_port=free_port(),
        smtp_port=free_port(),
        slack_port=free_port(),
        **settings,
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    cfg = stack_config(tmp_path_factory, "stack")
    try:
        up(cfg)
        api = api_for(cfg)
        wait_for_dags(api, E2E_DAGS)
        yield cfg
    finally:
        down(cfg)


@pytest.fixture
def forget_run(stack):
    """Delete the cases of the runs a test names from the shared knowledge base afterwards: a retry
    that verifiably failed, a person's rejection, or an escalation without a diagnosis is memory, and
    would change what the next test's flaky warehouse gets (an approval, an escalation) instead of
    an auto-retry."""
    runs: list[str] = []
    yield runs
    for run in runs:
        with psycopg2.connect(stack.database_uri("doctor")) as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM doctor.failure_cases WHERE run_id = %s", (run,))


# -- a real headless browser, signed in (the UI tests) ----------------------------------------------

CHROMIUM = os.environ.get("DOCTOR_UI_CHROMIUM", "/usr/bin/chromium")
#: Seconds a view may take to show in the browser (the first request builds the plugin's app).
VIEW_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make install` installs Debian's chromium")
    with sync_playwright() as pw:
        # --no-sandbox: the tests run as root here, where Chromium's sandbox refuses to start.
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def base_url(stack) -> str:
    # The stack's [api] base_url names localhost: the UI and its plugin views load from there.
    return f"http://localhost:{stack.api_port}"


def open_tab(page, stack, dag_id: str, run_id: str, task_id: str):
    """Open the task instance's Doctor tab in Airflow's UI; return the tab's frame."""
    import re
    from urllib.parse import quote

    page.goto(
        f"{base_url(stack)}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
        f"/tasks/{quote(task_id, safe='')}/plugin/doctor"
    )
    frame = page.frame_locator("iframe[src*='/doctor/tab']")
    frame.get_by_role("heading", name=re.compile("^Doctor")).wait_for(timeout=VIEW_TIMEOUT_MS)
    return frame


@pytest.fixture(scope="module")
def page(browser, stack):
    """A signed-in browser page: the admin's JWT in the `_token` cookie, as the login form leaves it."""
    token = httpx.post(
        f"{stack.api_url}/auth/token",
        json={"username": stack.username, "password": stack.password},
        timeout=30,
    ).json()["access_token"]
    context = browser.new_context(viewport={"width": 1440, "height": 1600})
    context.add_cookies([{"name": "_token", "value": token, "url": base_url(stack)}])
    p = context.new_page()
    yield p
    context.close()

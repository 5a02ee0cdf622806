"""One real Airflow stack for every end-to-end test module (starting one costs about 20 s)."""

from __future__ import annotations

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

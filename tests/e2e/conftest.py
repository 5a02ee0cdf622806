"""One real Airflow stack for every end-to-end test module (starting one costs about 20 s)."""

from __future__ import annotations

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


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    cfg = StackConfig(
        state_dir=tmp_path_factory.mktemp("stack"),
        api_port=free_port(),
        pg_port=free_port(),
        smtp_port=free_port(),
        slack_port=free_port(),
    )
    try:
        up(cfg)
        api = api_for(cfg)
        wait_for_dags(api, E2E_DAGS)
        yield cfg
    finally:
        down(cfg)

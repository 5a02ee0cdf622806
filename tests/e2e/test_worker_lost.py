"""A worker lost mid-try, end to end: the task's supervisor is killed, the task log just stops, the
scheduler records a heartbeat timeout in its audit log, and the doctor reads that record and heals
the try.

Its own stack for this module, with `[scheduler] task_instance_heartbeat_timeout` at 20 s (default
300 s) so that the scheduler notices within the test; the session stack keeps the default, so a
slow heartbeat under the storm's load cannot kill its tries.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psycopg2
import pytest

from airflow_doctor.models import FailureRef
from scripts.demo import api_for, case_for, kb_for, trigger, wait_for_dags, wait_until
from scripts.stack import down, up
from tests.e2e.conftest import stack_config

pytestmark = pytest.mark.e2e

DAG, TASK = "example_worker_lost", "export"


@pytest.fixture(scope="module")
def short_heartbeat_stack(tmp_path_factory):
    cfg = stack_config(
        tmp_path_factory,
        "heartbeat-stack",
        extra_env={
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        },
    )
    try:
        up(cfg)
        wait_for_dags(api_for(cfg), ["doctor", DAG])
        yield cfg
    finally:
        down(cfg)


def _parent(pid: int) -> int:
    """The parent pid of `pid` (Linux /proc): the task process's supervisor."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_a_try_whose_worker_is_lost_is_read_from_the_audit_log_and_healed(short_heartbeat_stack):
    stack = short_heartbeat_stack
    api, kb = api_for(stack), kb_for(stack)
    run = trigger(api, DAG)

    def running_pid() -> int | None:
        ti = api.get_task_instance(DAG, run, TASK)
        return int(ti["pid"]) if str(ti.get("state")) == "running" and ti.get("pid") else None

    pid = wait_until(running_pid, 90, "the first try to run")
    first_try = FailureRef(dag_id=DAG, run_id=run, task_id=TASK, try_number=1)
    wait_until(lambda: "exported part 2" in str(api.get_log(first_try)), 60, "the try to work")
    supervisor = _parent(pid)
    assert "airflow" in Path(f"/proc/{supervisor}/cmdline").read_text()
    # The node goes away: the supervisor (which heartbeats) and its task process die at once.
    os.kill(supervisor, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)

    case = wait_until(lambda: case_for(kb, DAG, run, TASK), 120, "the doctor's case")
    assert case["error_class"] == "worker_lost", case
    assert case["decision"] == "auto_retry", case["reasons"]
    assert "judgement: the primary error is in the retry-safe class worker_lost" in case["reasons"]
    with psycopg2.connect(stack.database_uri("doctor")) as conn, conn.cursor() as cur:
        cur.execute("SELECT excerpt FROM doctor.failure_cases WHERE id = %s", (case["id"],))
        excerpt = cur.fetchone()[0]
    # What ended the try came from Airflow's audit log, not from the log, which just stops.
    assert "AUDIT airflow - Airflow audit log: heartbeat timeout: Task did not emit heartbeat" in excerpt
    assert "Traceback" not in excerpt and "ERROR" not in excerpt

    def healed() -> dict | None:
        ti = api.get_task_instance(DAG, run, TASK)
        return ti if str(ti.get("state")) == "success" and int(ti.get("try_number") or 0) == 2 else None

    wait_until(healed, 120, "the retried try to succeed")

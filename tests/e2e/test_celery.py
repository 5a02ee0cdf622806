"""The storm end to end on the CeleryExecutor: a Redis broker and two `airflow celery worker`s.

Its own stack for this module (scripts/stack.py with executor="celery"), stopped at the module's
end; the LocalExecutor session stack of the other end-to-end modules is not involved. The storm
scenario and its exactly-once assertions are the LocalExecutor test's (tests/e2e/storm.py); this
module adds that the storm's task instances ran on both workers, that the listener reported every
failure from inside the Celery workers' task processes, and that the doctor ran there too.
"""

from __future__ import annotations

import pytest

from scripts.demo import api_for, wait_for_dags
from scripts.stack import down, up
from tests.conftest import free_port
from tests.e2e.conftest import stack_config
from tests.e2e.storm import STORM_DAG, STORM_TASK, run_storm, task_instance_hosts

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def celery_stack(tmp_path_factory):
    cfg = stack_config(
        tmp_path_factory,
        "celery-stack",
        redis_port=free_port(),
        executor="celery",
        celery_workers=2,
        celery_concurrency=2,
    )
    try:
        state = up(cfg)
        assert state["executor"] == "CeleryExecutor"
        wait_for_dags(api_for(cfg), ["doctor", STORM_DAG])
        yield cfg
    finally:
        down(cfg)


def test_a_storm_on_two_celery_workers_is_claimed_once_and_reported_in_one_digest(celery_stack):
    storm = run_storm(celery_stack)
    workers = set(celery_stack.celery_worker_names)
    assert len(workers) == 2

    # The storm's failures were spread over both workers, and ran nowhere else.
    storm_hosts = task_instance_hosts(celery_stack, STORM_DAG, storm.run_id)
    assert storm_hosts[STORM_TASK] == workers, storm_hosts
    # Every failure reached the inbox from the listener inside a Celery worker's task process
    # (not from the sweeper's catch-up), so the listener plugin loads there.
    assert storm.inbox_sources == {i: "listener" for i in range(50)}
    # The doctor run that claimed the storm ran its tasks on the Celery workers as well (a task that
    # finishes in the triggerer may show another host, so this asserts presence, not exclusivity).
    doctor_hosts = set().union(*task_instance_hosts(celery_stack, "doctor", storm.doctor_run_id).values())
    assert doctor_hosts & workers, doctor_hosts

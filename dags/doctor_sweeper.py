"""
### doctor_sweeper

The safety net of the doctor. Every few minutes it lists task instances that failed recently
through the REST API and reports those no listener reported: tasks killed by SIGKILL or the OOM
killer, heartbeat timeouts, tasks marked failed by hand. It writes them to the doctor's inbox and
posts the same asset event the listener posts, so the `doctor` DAG handles them; a failure already
reported is left alone (one failure is handled once, whatever its sources).

It also learns from people (`learn_from_people`, independent of the sweep): for each failure the
doctor escalated in the last 7 days, it reads the task instance and records what a person did:
cleared it and the retry succeeded (a verified transient case), cleared it and it failed again, or
left it failed for 24 hours (a person's "permanent"). The gate reads these as memory.

Interval: environment variable `DOCTOR_SWEEPER_INTERVAL_MINUTES` (default 3); look-back: Variable
`doctor_sweeper_lookback_minutes` (default 60).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

INTERVAL = timedelta(minutes=float(os.environ.get("DOCTOR_SWEEPER_INTERVAL_MINUTES", "3")))


@dag(
    dag_id="doctor_sweeper",
    schedule=INTERVAL,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args={"owner": "airflow-doctor", "retries": 1, "retry_delay": timedelta(seconds=30)},
    tags=["doctor", "doctor:off"],
)
def doctor_sweeper():
    @task
    def sweep_failed_task_instances() -> dict:
        from include.doctor.capture import sweep

        return sweep()

    @task
    def learn_from_people() -> dict:
        from include.doctor import learning

        return learning.learn_from_people()

    sweep_failed_task_instances()
    learn_from_people()


doctor_sweeper()

"""
### example_oom_killed

Demo of a failure no listener can report: `crunch` is killed with SIGKILL, as the kernel's OOM
killer would kill a task that outgrew its memory. The task's process dies at once, so neither its
callbacks nor the doctor's listener run; the `doctor_sweeper` DAG finds the failed task instance.
"""

from __future__ import annotations

import os
import signal

import pendulum
from airflow.sdk import dag, task


@dag(
    dag_id="example_oom_killed",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    default_args={"owner": "data-eng", "retries": 0},
    tags=["example", "doctor-demo"],
)
def example_oom_killed():
    @task
    def crunch() -> None:
        os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does

    crunch()


example_oom_killed()

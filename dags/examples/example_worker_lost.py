"""
### example_worker_lost

Demo of a worker that goes away mid-try (a node drained, a pod evicted, a worker restarted): `export`
works for up to 10 minutes on its first try. When its task supervisor process is killed (the
end-to-end test kills it, as losing the node would), the task log just stops: no exception, no
error line. The scheduler notices the missing heartbeats after `[scheduler]
task_instance_heartbeat_timeout` and records a "heartbeat timeout" in the audit log; the doctor reads
that record and retries the try. A retried try finishes at once.
"""

from __future__ import annotations

import time

import pendulum
from airflow.sdk import dag, get_current_context, task


@dag(
    dag_id="example_worker_lost",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    default_args={"owner": "data-eng", "retries": 0},
    tags=["example", "doctor-demo"],
)
def example_worker_lost():
    @task
    def export() -> int:
        if get_current_context()["ti"].try_number > 1:
            return 41
        for part in range(600):
            print(f"exported part {part}")
            time.sleep(1)
        return 600

    export()


example_worker_lost()

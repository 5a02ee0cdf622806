"""
### example_burst_failures

A storm: `fail_together` is mapped over `conf["count"]` (default 5) instances that all wait for
the same instant (`conf["fail_at"]`, epoch seconds) and then fail within milliseconds of each
other with the same upstream error. Used by the end-to-end tests to show that every failure is
diagnosed exactly once even when asset events coalesce.
"""

from __future__ import annotations

import time

import pendulum
from airflow.sdk import dag, get_current_context, task


@dag(
    dag_id="example_burst_failures",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    default_args={"owner": "data-eng", "retries": 0},
    tags=["example", "doctor:notify-only"],
    params={"count": 5, "fail_at": 0},
)
def example_burst_failures():
    @task
    def shards() -> list[int]:
        return list(range(int(get_current_context()["params"]["count"])))

    @task
    def fail_together(shard: int) -> None:
        fail_at = float(get_current_context()["params"]["fail_at"] or 0)
        time.sleep(max(0.0, fail_at - time.time()))
        raise RuntimeError(
            f"upstream export for shard {shard} is missing: s3://demo-bucket/export/{shard}.csv"
        )

    fail_together.expand(shard=shards())


example_burst_failures()

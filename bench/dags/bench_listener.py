"""
### bench_listener_success, bench_listener_failure, bench_listener_warmup

The pipelines of `python -m bench.listener`, each one task mapped over trivial instances:
`bench_listener_success` has `BENCH_LISTENER_N` (read when the file is parsed, default 40) that
return at once; `bench_listener_failure` as many that raise (retries=0), so each is a final failure
the doctor's listener reports; `bench_listener_warmup` has `BENCH_LISTENER_WARMUP` (default 8),
alternately succeeding and failing, run first so the measured runs find the executor warm.
Not tagged `doctor:off`: the listener must see these failures. Only the benchmark puts this folder
on the DAGs path.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag, task

N = int(os.environ.get("BENCH_LISTENER_N", "40"))
WARMUP = int(os.environ.get("BENCH_LISTENER_WARMUP", "8"))


def _bench_dag(dag_id: str, count: int, fails: str):
    """A DAG of one task mapped over `count` instances; `fails` is "none", "all" or "odd"."""

    @dag(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
        catchup=False,
        doc_md=__doc__,
        default_args={"owner": "bench", "retries": 0},
        tags=["bench"],
    )
    def bench():
        @task
        def work(i: int) -> None:
            if fails == "all" or (fails == "odd" and i % 2):
                raise RuntimeError(f"bench_listener: planned failure of instance {i}")

        work.expand(i=list(range(count)))

    return bench()


bench_listener_success = _bench_dag("bench_listener_success", N, fails="none")
bench_listener_failure = _bench_dag("bench_listener_failure", N, fails="all")
bench_listener_warmup = _bench_dag("bench_listener_warmup", WARMUP, fails="odd")

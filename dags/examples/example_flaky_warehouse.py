"""
### example_flaky_warehouse

Demo of a **transient** failure. `load_orders` queries the warehouse (connection
`demo_warehouse`); on its first try the warehouse restarts under the query, modelled by the server
ending the task's session (`pg_terminate_backend`, what a fast shutdown or a failover does to every
open session), so the client sees `psycopg2.OperationalError: server closed the connection
unexpectedly` (or `terminating connection due to administrator command`). A retry reaches the
warehouse again and succeeds. `retries=0` on purpose: the doctor, not Airflow's fixed retry,
decides whether to retry. Param `outage_tries` (default 1) makes the outage last that many tries,
so a retry does not help.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, get_current_context, task


@dag(
    dag_id="example_flaky_warehouse",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    default_args={"owner": "data-eng", "retries": 0},
    tags=["example", "doctor-demo"],
    params={"outage_tries": 1},
)
def example_flaky_warehouse():
    @task
    def load_orders() -> int:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        hook = PostgresHook(postgres_conn_id="demo_warehouse")
        ctx = get_current_context()
        if ctx["ti"].try_number <= int(ctx["params"]["outage_tries"]):
            # The warehouse restarts under the first try's query: the server ends the session.
            hook.run("SELECT pg_terminate_backend(pg_backend_pid())")
        rows = hook.get_records("SELECT count(*) FROM pg_catalog.pg_tables")
        return int(rows[0][0])

    load_orders()


example_flaky_warehouse()

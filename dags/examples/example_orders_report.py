"""
### example_orders_report

Demo of a **permanent** failure: the upstream API changed its payload and no longer sends
`customer_id`, so `build_report` raises `KeyError: 'customer_id'` on every try. A retry cannot
help; the doctor must escalate to a person with the diagnosis.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(
    dag_id="example_orders_report",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    default_args={"owner": "analytics", "retries": 0},
    tags=["example", "doctor-demo"],
)
def example_orders_report():
    @task
    def fetch_orders() -> list[dict]:
        # The API's new payload: `customer` replaced `customer_id`.
        return [
            {"order_id": 1, "customer": {"id": 7}, "amount": 12.5},
            {"order_id": 2, "customer": {"id": 9}, "amount": 30.0},
        ]

    @task
    def build_report(orders: list[dict]) -> dict:
        totals: dict[int, float] = {}
        for order in orders:
            totals[order["customer_id"]] = totals.get(order["customer_id"], 0.0) + order["amount"]
        return totals

    build_report(fetch_orders())


example_orders_report()

"""The httpx REST client against the real Airflow 3.3 API server of the test stack, and the
embedding service the stack starts (every method the doctor, the demo and the benches call)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from airflow_doctor.hooks.airflow_api import AirflowAPIError
from airflow_doctor.models import FailureRef
from scripts.demo import api_for, trigger, wait_until

pytestmark = pytest.mark.e2e

DAG = "example_orders_report"  # fetch_orders succeeds with an XCom, build_report fails: KeyError


def test_the_client_reads_and_writes_what_the_doctor_needs(stack):
    api = api_for(stack)
    started = datetime.now(UTC) - timedelta(seconds=5)
    assert "doctor_listener" in api.list_plugins()
    assert api.set_dag_paused(DAG, True)["is_paused"] is True
    assert api.get_dag(DAG)["is_paused"] is True
    assert set(api.get_dag_tags(DAG)) >= {"example", "doctor-demo"}
    assert api.get_dag_details(DAG)["owners"] == ["analytics"]

    run_id = trigger(api, DAG, {"source": "client-e2e"})  # unpauses, then triggers
    assert api.get_dag(DAG)["is_paused"] is False
    run = wait_until(
        lambda: (r := api.get_dag_run(DAG, run_id))["state"] in {"success", "failed"} and r,
        180,
        "the report run to finish",
    )
    assert run["state"] == "failed" and run["conf"] == {"source": "client-e2e"}
    assert api.list_dag_runs(DAG)["total_entries"] >= 1

    states = {ti["task_id"]: ti["state"] for ti in api.list_task_instances(DAG, run_id)}
    assert states == {"fetch_orders": "success", "build_report": "failed"}
    ref = FailureRef(dag_id=DAG, run_id=run_id, task_id="build_report", try_number=1)
    assert api.get_try(ref)["state"] == "failed"
    assert "customer_id" in " ".join(str(record) for record in api.get_log(ref))
    failed = {(t["dag_id"], t["dag_run_id"], t["task_id"]) for t in api.list_failed_task_instances(started)}
    assert (DAG, run_id, "build_report") in failed

    entry = api.get_xcom_entry(DAG, run_id, "fetch_orders", deserialize=True)
    assert [order["order_id"] for order in entry["value"]] == [1, 2]

    api.set_task_instance_note(
        FailureRef(dag_id=DAG, run_id=run_id, task_id="fetch_orders", try_number=1), "n" * 1200
    )
    assert api.get_task_instance(DAG, run_id, "fetch_orders")["note"] == "n" * 1000
    api.set_dag_run_note(DAG, run_id, "checked by the client test")
    assert api.get_dag_run(DAG, run_id)["note"] == "checked by the client test"
    assert api.failure_asset_id > 0


def test_variables_pools_and_an_expired_token(stack):
    api = api_for(stack)
    api.set_variable("doctor_client_e2e", "1")
    api.set_variable("doctor_client_e2e", "2")  # exists: overwritten
    assert api.request_json("GET", "/api/v2/variables/doctor_client_e2e")["value"] == "2"
    assert api.delete_variable("doctor_client_e2e") is True
    assert api.delete_variable("doctor_client_e2e") is False

    assert api.ensure_pool("doctor_client_e2e", 3, "client test") is True
    assert api.ensure_pool("doctor_client_e2e", 5, "client test") is False
    assert api.request_json("GET", "/api/v2/pools/doctor_client_e2e")["slots"] == 3

    api._token = "not-a-jwt"  # one 403 "Invalid JWT token", one new token, the call succeeds
    assert api.get_dag(DAG)["dag_id"] == DAG
    assert api._token != "not-a-jwt"

    with pytest.raises(AirflowAPIError, match="HTTP 404") as err:
        api.get_dag("no_such_dag")
    assert err.value.status == 404


def test_the_stack_runs_the_embedding_service_and_seeds_through_it(stack):
    assert stack.embed_url, "up() gives the stack an embedding service"
    health = httpx.get(f"{stack.embed_url}/health", timeout=5).json()
    assert health == {"status": "ok", "model": "all-MiniLM-L6-v2", "dimension": 384}
    log = (stack.log_dir / "embed.log").read_text()
    assert "Model ready" in log and "Embedded" in log  # `airflow_doctor seed` went through the service

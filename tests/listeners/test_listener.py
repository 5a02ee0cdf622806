"""The listener, called directly (Airflow swallows a listener's exceptions, so test it here)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from airflow_doctor.knowledge.store import KnowledgeBase


def runtime_ti(state: str = "failed", dag_id: str = "etl", try_number: int = 1, map_index: int = -1):
    """Stands in for a RuntimeTaskInstance: the attributes the listener reads."""
    return SimpleNamespace(
        dag_id=dag_id,
        run_id="manual__1",
        task_id="load",
        map_index=map_index,
        try_number=try_number,
        state=state,
        end_date=None,
    )


@pytest.fixture
def dead_api(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOCTOR_AIRFLOW_API",
        json.dumps(
            {"conn_type": "http", "host": "http://127.0.0.1:1", "login": "admin", "password": "admin"}
        ),
    )


def test_listener_records_a_final_failure_in_the_inbox_even_when_the_api_is_down(doctor_db_conn, dead_api):
    from airflow_doctor.listeners.failures import on_task_instance_failed

    on_task_instance_failed(previous_state="running", task_instance=runtime_ti(), error=RuntimeError("boom"))
    claimed = KnowledgeBase(dsn=doctor_db_conn).claim_failures("doc")
    assert [(r.dag_id, r.task_id, r.try_number, r.source) for r in claimed] == [
        ("etl", "load", 1, "listener")
    ]


@pytest.mark.parametrize(
    "ti",
    [
        pytest.param(runtime_ti(state="up_for_retry"), id="up-for-retry-is-not-final"),
        pytest.param(runtime_ti(dag_id="doctor"), id="doctor-never-diagnoses-itself"),
    ],
)
def test_listener_ignores(ti, doctor_db_conn, dead_api):
    from airflow_doctor.listeners.failures import on_task_instance_failed

    on_task_instance_failed(previous_state="running", task_instance=ti, error=None)
    assert KnowledgeBase(dsn=doctor_db_conn).claim_failures("doc") == []


def test_listener_never_raises_when_everything_is_down(monkeypatch, dead_api):
    from airflow_doctor.listeners.failures import on_task_instance_failed

    monkeypatch.setenv(
        "AIRFLOW_CONN_DOCTOR_DB",
        json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "login": "x", "schema": "x"}),
    )
    on_task_instance_failed(previous_state="running", task_instance=runtime_ti(), error=None)
    on_task_instance_failed(previous_state="running", task_instance=object(), error=None)  # not a TI at all


def _retried_tries(dsn: str) -> list[tuple]:
    kb = KnowledgeBase(dsn=dsn)
    with kb.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT dag_id, task_id, map_index, try_number, source FROM doctor.retried_tries")
        return cur.fetchall()


def test_listener_notes_a_try_going_to_up_for_retry_and_nothing_else(doctor_db_conn, monkeypatch):
    """Memory of Airflow's own retries: one row, no inbox, no asset event (no REST call at all)."""
    from airflow_doctor.hooks.airflow_api import AirflowAPI
    from airflow_doctor.listeners.failures import on_task_instance_failed

    def no_rest(*args, **kwargs):
        raise AssertionError("the listener made a REST call for a retried try")

    monkeypatch.setattr(AirflowAPI, "_request", no_rest)
    on_task_instance_failed(
        previous_state="running", task_instance=runtime_ti(state="up_for_retry", map_index=2), error=None
    )
    assert _retried_tries(doctor_db_conn) == [("etl", "load", 2, 1, "listener")]
    assert KnowledgeBase(dsn=doctor_db_conn).claim_failures("doc") == []


def test_listener_notes_no_retry_of_the_doctor_or_of_a_dag_tagged_off(doctor_db_conn, dead_api):
    from airflow_doctor.listeners.failures import on_task_instance_failed

    opted_out = runtime_ti(state="up_for_retry")
    opted_out.task = SimpleNamespace(dag=SimpleNamespace(tags=["doctor:off"]))
    for ti in (runtime_ti(state="up_for_retry", dag_id="doctor_sweeper"), opted_out):
        on_task_instance_failed(previous_state="running", task_instance=ti, error=None)
    assert _retried_tries(doctor_db_conn) == []


def test_listener_never_raises_noting_a_retry_when_the_knowledge_base_is_down(monkeypatch, caplog):
    from airflow_doctor.listeners.failures import on_task_instance_failed

    monkeypatch.setenv(
        "AIRFLOW_CONN_DOCTOR_DB",
        json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "login": "x", "schema": "x"}),
    )
    on_task_instance_failed(
        previous_state="running", task_instance=runtime_ti(state="up_for_retry"), error=None
    )
    assert "could not note the retry of etl.load try 1" in caplog.text

"""`DoctorRetryPolicy` on a real Airflow 3.3 (docs/retry-policy.md): the doctor's memory deciding
Airflow's own retries at the moment of failure, in the failing task's worker.

- A recurrence of a failure this deployment has proven transient (two of Airflow's own retries of it
  verifiably succeeded, learnt by the sweeper) is retried by Airflow under the policy, with the
  policy's reason stored as the try's retry_reason, no doctor clear; its success becomes memory too.
- A failure proven permanent (a person's "permanent" on the Doctor tab) is failed at its first try,
  with every retry left unspent, and the doctor escalates it at once, saying the task's retry
  policy failed it on purpose.
- A knowledge base the policy cannot reach means DEFAULT: the task is retried as without the policy.

Its own stack, on a DAGs folder of its own (the doctor's two DAG files plus the DAGs written here).
"""

from __future__ import annotations

import shutil
import textwrap
import time

import pytest

from airflow_doctor.knowledge.store import UIStore
from airflow_doctor.models import FailureRef
from scripts.demo import api_for, sink_messages, trigger, wait_for_dags, wait_until
from scripts.stack import PROJECT_ROOT, down, up
from tests.e2e.conftest import stack_config
from tests.e2e.test_deployment_record import rows, run_ended, sweep

pytestmark = pytest.mark.e2e

DAG_TEMPLATE = '''
"""e2e DAG {dag_id}: fails while try_number <= the run's fail_tries."""

from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task

from airflow_doctor.retry_policy import DoctorRetryPolicy


@dag(
    dag_id="{dag_id}",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args={{
        "owner": "data-eng",
        "retries": {retries},
        "retry_delay": timedelta(seconds={delay}),
        "retry_policy": DoctorRetryPolicy({policy_args}),
    }},
    params={{"fail_tries": 0}},
    tags=["e2e"],
)
def {dag_id}():
    @task
    def {task_id}() -> int:
        context = get_current_context()
        if context["ti"].try_number <= int(context["params"].get("fail_tries") or 0):
{raise_block}
        return 1

    {task_id}()


{dag_id}()
'''

RESET = 'raise ConnectionResetError(104, "Connection reset by peer")'
MISSING_KEY = 'raise KeyError("customer_region")'
#: Airflow's retry_delay of the permanent failure's DAG: without the policy, its three retries would
#: hold the escalation back by 3 x this.
PERMANENT_DELAY_S = 120

DAGS = {
    # (task_id, raise line, retries, retry_delay s, DoctorRetryPolicy arguments)
    "policy_feed": ("pull_feed", RESET, 2, 2, ""),
    "policy_report_once": ("build_report", MISSING_KEY, 0, 1, ""),
    "policy_report": ("build_report", MISSING_KEY, 3, PERMANENT_DELAY_S, ""),
    "policy_unreachable": ("pull_feed", RESET, 1, 1, 'conn_id="doctor_db_unreachable"'),
}


def write_dag(folder, dag_id: str) -> None:
    task_id, raise_line, retries, delay, policy_args = DAGS[dag_id]
    source = DAG_TEMPLATE.format(
        dag_id=dag_id,
        task_id=task_id,
        retries=retries,
        delay=delay,
        policy_args=policy_args,
        raise_block=textwrap.indent(raise_line, " " * 12),
    )
    (folder / f"{dag_id}.py").write_text(source, encoding="utf-8")


@pytest.fixture(scope="module")
def policy_stack(tmp_path_factory):
    dags = tmp_path_factory.mktemp("policy-dags")
    for name in ("doctor.py", "doctor_sweeper.py"):
        shutil.copy(PROJECT_ROOT / "dags" / name, dags / name)
    for dag_id in DAGS:
        write_dag(dags, dag_id)
    cfg = stack_config(
        tmp_path_factory,
        "policy-stack",
        extra_env={
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__DOCTOR__APPROVAL_ENABLED": "False",
            # A knowledge base nobody listens on: port 1 on loopback refuses at once.
            "AIRFLOW_CONN_DOCTOR_DB_UNREACHABLE": "postgresql://doctor:unused@127.0.0.1:1/doctor",
        },
    )
    try:
        up(cfg)
        wait_for_dags(api_for(cfg), ["doctor", "doctor_sweeper", *DAGS])
        yield cfg
    finally:
        down(cfg)


def tries_of(api, dag_id: str, run_id: str) -> list[dict]:
    task_id = DAGS[dag_id][0]
    data = api.request_json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
    return sorted(data["task_instances"], key=lambda t: t["try_number"])


def runner_decisions(api, dag_id: str, run_id: str, try_number: int) -> list[dict]:
    """The "Retry policy decision" records Airflow's task runner wrote in a try's log."""
    ref = FailureRef(dag_id=dag_id, run_id=run_id, task_id=DAGS[dag_id][0], try_number=try_number)
    return [r for r in api.get_log(ref) if isinstance(r, dict) and r.get("event") == "Retry policy decision"]


def policy_decisions(stack, dag_id: str, run_id: str) -> list[tuple]:
    return rows(
        stack,
        "SELECT try_number, action, reason FROM doctor.policy_decisions "
        "WHERE dag_id = %s AND run_id = %s ORDER BY try_number",
        dag_id,
        run_id,
    )


def doctor_clears(stack, dag_id: str, run_id: str) -> int:
    return rows(
        stack, "SELECT count(*) FROM doctor.clears WHERE dag_id = %s AND run_id = %s", dag_id, run_id
    )[0][0]


def test_a_proven_transient_recurrence_is_retried_by_airflow_under_the_policy(policy_stack):
    stack = policy_stack
    api = api_for(stack)
    # Twice, the fingerprint is unknown: the policy says DEFAULT and Airflow's own retry heals it.
    for _ in range(2):
        run = trigger(api, "policy_feed", conf={"fail_tries": 1})
        assert run_ended(api, "policy_feed", run) == "success"
        assert policy_decisions(stack, "policy_feed", run) == []  # DEFAULT is not recorded
    sweep(api)  # the sweeper learns both retries (actor airflow, outcome succeeded)
    learnt = rows(
        stack,
        "SELECT count(*) FROM doctor.failure_cases c JOIN doctor.remediations r ON r.case_id = c.id "
        "WHERE c.dag_id = 'policy_feed' AND r.actor = 'airflow' AND r.outcome = 'succeeded'",
    )[0][0]
    assert learnt == 2

    run = trigger(api, "policy_feed", conf={"fail_tries": 1})
    assert run_ended(api, "policy_feed", run) == "success"
    assert [t["try_number"] for t in tries_of(api, "policy_feed", run)] == [1, 2]
    assert tries_of(api, "policy_feed", run)[-1]["state"] == "success"
    [(try_number, action, reason)] = policy_decisions(stack, "policy_feed", run)
    assert (try_number, action) == (1, "retry") and "proven transient here" in reason
    # Airflow's task runner logged the policy's decision in the failed try's log.
    [logged] = runner_decisions(api, "policy_feed", run, 1)
    assert logged["action"] == "retry" and "proven transient here" in logged["reason"]
    assert doctor_clears(stack, "policy_feed", run) == 0  # Airflow retried it; the doctor never had to

    sweep(api)  # and this success becomes memory like the others
    recurrence = rows(
        stack,
        "SELECT r.outcome FROM doctor.failure_cases c JOIN doctor.remediations r ON r.case_id = c.id "
        "WHERE c.dag_id = 'policy_feed' AND c.run_id = %s AND r.actor = 'airflow'",
        run,
    )
    assert recurrence == [("succeeded",)]


def test_a_proven_permanent_failure_is_failed_at_once_and_escalated(policy_stack):
    stack = policy_stack
    api = api_for(stack)
    # The same error in a DAG without retries: the doctor escalates it, and a person answers
    # "permanent" on its Doctor tab.
    once = trigger(api, "policy_report_once", conf={"fail_tries": 99})
    assert run_ended(api, "policy_report_once", once) == "failed"
    case_id = wait_until(
        lambda: (
            (
                got := rows(
                    stack,
                    "SELECT id FROM doctor.failure_cases WHERE run_id = %s AND dag_id = %s",
                    once,
                    "policy_report_once",
                )
            )
            and got[0][0]
        ),
        240,
        "the doctor's case of policy_report_once",
    )
    UIStore(dsn=stack.database_uri("doctor")).record_answer(case_id, answer="permanent", user_name="oncall")

    since = time.time()
    run = trigger(api, "policy_report", conf={"fail_tries": 99})
    assert run_ended(api, "policy_report", run) == "failed"
    tries = tries_of(api, "policy_report", run)
    # Failed at its first try, with three retries unspent: without the policy the last try would
    # have failed 3 x PERMANENT_DELAY_S later.
    assert [t["try_number"] for t in tries] == [1] and tries[0]["state"] == "failed"
    [(try_number, action, reason)] = policy_decisions(stack, "policy_report", run)
    assert (try_number, action) == (1, "fail") and "a person answered permanent" in reason
    assert [r["action"] for r in runner_decisions(api, "policy_report", run, 1)] == ["fail"]

    decision, reasons = wait_until(
        lambda: (
            (
                got := rows(
                    stack,
                    "SELECT r.decision, r.reasons FROM doctor.failure_cases c JOIN doctor.remediations r "
                    "ON r.case_id = c.id AND r.actor = 'doctor' WHERE c.dag_id = 'policy_report' AND c.run_id = %s",
                    run,
                )
            )
            and got[0]
        ),
        240,
        "the doctor's decision on policy_report",
    )
    assert decision == "escalate"
    assert any("retry policy decided to fail this try" in r for r in reasons), reasons
    escalated = wait_until(
        lambda: [m for m in sink_messages(stack, since)[0] if run in m.get("text", "")],
        120,
        "the escalation email of policy_report",
    )
    assert escalated and time.time() - since < PERMANENT_DELAY_S


def test_an_unreachable_knowledge_base_means_default(policy_stack):
    stack = policy_stack
    api = api_for(stack)
    run = trigger(api, "policy_unreachable", conf={"fail_tries": 1})
    assert run_ended(api, "policy_unreachable", run) == "success"  # retried by Airflow as without it
    assert [t["try_number"] for t in tries_of(api, "policy_unreachable", run)] == [1, 2]
    assert policy_decisions(stack, "policy_unreachable", run) == []
    assert runner_decisions(api, "policy_unreachable", run, 1) == []  # DEFAULT gives no reason
    ref = FailureRef(dag_id="policy_unreachable", run_id=run, task_id="pull_feed", try_number=1)
    said = " ".join(str(r.get("event")) for r in api.get_log(ref) if isinstance(r, dict))
    assert "no decision" in said and "Airflow's own retries apply" in said

"""A stage that cannot do its job, end to end on the real stack (issue 13: "fails or is marked so,
and the downstream still escalates").

Claude answers every request with a 500 (a loopback server that speaks the Messages API stands in
for it), so `diagnose` has no diagnosis: it pushes what it has (the LLM's error) and fails red. The
gate, which runs after it whatever its state, reads that partial output from the failed try (Airflow
3.3 keeps a failed try's XCom) and escalates; people are told; the failed task is not retried.
"""

from __future__ import annotations

import json

import pytest

from airflow_doctor.models import Diagnosed
from scripts.demo import api_for, case_for, kb_for, sink_messages, trigger, wait_for_dags, wait_until
from scripts.stack import down, up
from tests.e2e.conftest import stack_config
from tests.e2e.graph import settled_stage_states
from tests.fakes.anthropic_server import AnthropicLoopback, error

pytestmark = pytest.mark.e2e

LABEL = "example_flaky_warehouse.load_orders"


@pytest.fixture(scope="module")
def failing_llm(tmp_path_factory):
    """A stack of its own whose `doctor_llm` points at a Messages API that answers 500, with
    `[doctor] memory_first` off so that the diagnose stage asks it (a deployment setting, fixed when
    the processes start). Its undiagnosed escalation is no other test's memory."""
    with AnthropicLoopback() as server:
        server.replies.append(error(500, "api_error", "scripted outage"))
        cfg = stack_config(
            tmp_path_factory,
            "failing-llm-stack",
            llm_base_url=server.base_url,
            extra_env={"AIRFLOW__DOCTOR__MEMORY_FIRST": "False"},
        )
        try:
            up(cfg)
            wait_for_dags(api_for(cfg), ["doctor", "example_flaky_warehouse"])
            yield cfg, server
        finally:
            down(cfg)


def test_a_diagnose_stage_without_an_answer_is_red_and_the_failure_still_reaches_people(failing_llm):
    stack, server = failing_llm
    api, kb = api_for(stack), kb_for(stack)
    run = trigger(api, "example_flaky_warehouse")

    case = wait_until(lambda: case_for(kb, "example_flaky_warehouse", run, "load_orders"), 240, "the case")
    assert case["decision"] == "escalate" and not case["cleared"]
    assert server.requests, "the diagnose stage never called the Messages API"

    graph = settled_stage_states(api, case["doctor_run_id"], LABEL)
    assert graph["diagnose"] == "failed", graph
    assert {s: graph[s] for s in ("gate_on_confidence", "escalate", "notify_humans", "record_case")} == {
        "gate_on_confidence": "success",
        "escalate": "success",
        "notify_humans": "success",
        "record_case": "success",
    }, graph
    assert graph["clear_and_retry"] == graph["prepare_approval"] == "skipped", graph

    # The failed try's partial output survived it: what the LLM said (its error), no diagnosis.
    tis = api.request_json(
        "GET", f"/api/v2/dags/doctor/dagRuns/{case['doctor_run_id']}/taskInstances?limit=1000"
    )["task_instances"]
    index = next(t["map_index"] for t in tis if t["map_index"] >= 0 and t.get("rendered_map_index") == LABEL)
    stored = api.get_xcom_entry("doctor", case["doctor_run_id"], "handle_failures.diagnose", map_index=index)
    # The Task SDK stores the model with its class name; its fields are the Diagnosed model's.
    value = json.loads(stored["value"]) if isinstance(stored["value"], str) else stored["value"]
    assert value["__classname__"] == "airflow_doctor.models.Diagnosed", value
    partial = Diagnosed.model_validate(value["__data__"])
    assert partial.diagnosis is None and partial.llm_called is True and partial.error, partial

    # Nothing was retried, and people heard of it.
    ti = api.get_task_instance("example_flaky_warehouse", run, "load_orders")
    assert ti["state"] == "failed" and ti["try_number"] == 1

    def escalation_mail():
        mails, _ = sink_messages(stack)
        return next(
            (
                m
                for m in mails
                if m.get("subject", "").startswith("[airflow-doctor] escalated") and run in m.get("html", "")
            ),
            None,
        )

    mail = wait_until(escalation_mail, 60, "the escalation email about this run")
    assert LABEL in mail["subject"]

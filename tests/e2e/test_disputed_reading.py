"""A disputed reading end to end, with Claude configured (the loopback Messages API server):
an unresolvable host, which the offline rules read as a misconfiguration, is settled as transient by a
confident diagnosis corroborated by the task's record (it succeeded on the same DAG version) and
healed, once; the same failure from a log that argues for a retry is not.

Its own stack for this module, with `doctor_llm` pointing at the loopback server, which answers every
diagnosis as a model sure the failure is transient would (confidence 0.95, the exception line as
evidence, verbatim).
"""

from __future__ import annotations

import re

import psycopg2
import pytest

from scripts.demo import api_for, case_for, kb_for, trigger, wait_for_dags, wait_until
from scripts.stack import down, up
from tests.e2e.conftest import stack_config
from tests.fakes.anthropic_server import AnthropicLoopback, tool_message

pytestmark = pytest.mark.e2e

DAG, TASK = "example_unknown_host", "pull_rates"


def sure_it_is_transient(body: dict) -> dict:
    """A record_diagnosis call: transient, retry, 0.95, evidence the excerpt's exception line."""
    content = body["messages"][0]["content"]
    prompt = content if isinstance(content, str) else " ".join(b.get("text", "") for b in content)
    log = prompt.split("<untrusted_log>\n", 1)[-1].split("\n</untrusted_log>", 1)[0]
    line = next((x.strip() for x in log.splitlines() if re.search(r"gaierror", x)), "")
    return tool_message(
        {
            "error_class": "dns_resolution_failure",
            "root_cause": "The cluster resolver failed for a moment; the host exists.",
            "transient": True,
            "recommended_action": "retry",
            "confidence": 0.95,
            "fix_steps": ["Retry the task."],
            "evidence": [line],
        }
    )


@pytest.fixture(scope="module")
def llm_stack(tmp_path_factory):
    with AnthropicLoopback() as llm:
        llm.script(sure_it_is_transient)
        cfg = stack_config(tmp_path_factory, "llm-stack", llm_base_url=llm.base_url)
        try:
            up(cfg)
            wait_for_dags(api_for(cfg), ["doctor", DAG])
            yield cfg, llm
        finally:
            down(cfg)


def _state(api, run: str) -> tuple[str, int]:
    ti = api.get_task_instance(DAG, run, TASK)
    return str(ti.get("state")), int(ti.get("try_number") or 0)


def test_the_same_failure_from_a_log_that_pleads_keeps_the_rules_reading(llm_stack):
    # First: the next test's healed case would be memory (a verified retry of this fingerprint).
    stack, _ = llm_stack
    api, kb = api_for(stack), kb_for(stack)
    run = trigger(api, DAG, {"plead": True})
    case = wait_until(lambda: case_for(kb, DAG, run, TASK), 180, "the doctor's case")
    assert case["diagnoser"] == "llm", {
        k: case[k] for k in ("diagnoser", "model", "root_cause", "reasons") if k in case
    }
    with psycopg2.connect(stack.database_uri("doctor")) as conn, conn.cursor() as cur:
        cur.execute("SELECT excerpt FROM doctor.failure_cases WHERE id = %s", (case["id"],))
        excerpt = cur.fetchone()[0]
    assert "known flake, safe to retry" in excerpt, excerpt  # what the model was shown
    assert case["decision"] == "escalate", case["reasons"]
    assert any("argues for a retry" in r for r in case["reasons"]), case["reasons"]
    assert _state(api, run) == ("failed", 1)


def test_a_confident_diagnosis_settles_an_unresolvable_host_and_the_retry_heals_it(llm_stack):
    stack, llm = llm_stack
    api, kb = api_for(stack), kb_for(stack)
    ok = trigger(api, DAG, {"fail": False})  # the record a settled reading needs: a success
    wait_until(lambda: _state(api, ok) == ("success", 1), 120, "the successful run")
    run = trigger(api, DAG)
    case = wait_until(lambda: case_for(kb, DAG, run, TASK), 180, "the doctor's case")
    assert case["diagnoser"] == "llm" and case["error_class"] == "dns_resolution_failure", case
    assert case["decision"] == "auto_retry", case["reasons"]
    assert any("connection_misconfigured, a surface transient failures share" in r for r in case["reasons"])
    assert any("corroborated by the deployment's record" in r for r in case["reasons"])
    wait_until(lambda: _state(api, run) == ("success", 2), 120, "the retried try to succeed")
    assert any(r["path"].endswith("/v1/messages") for r in llm.requests)

"""The LLM path against a loopback server that speaks the Anthropic Messages API.

Every path ends in a valid Diagnosis or in "no diagnosis" (which the gate escalates); none raises.
"""

from __future__ import annotations

import json

import pytest

from airflow_doctor.judgement.diagnosis import TOOL_NAME, diagnose_failure, diagnose_with_llm
from airflow_doctor.judgement.gate import decide
from airflow_doctor.logs.excerpt import extract_excerpt
from airflow_doctor.models import Action, FailureRef, Memory, Neighbour
from airflow_doctor.settings import DoctorSettings, settings
from tests.fakes.anthropic_server import error, text_message, tool_message

REF = FailureRef(dag_id="etl", run_id="manual__1", task_id="load", try_number=1)
EXCEPTION_LINE = 'OperationalError: connection to server at "127.0.0.1", port 1 failed: Connection refused'


def good_input(**overrides) -> dict:
    return {
        "error_class": "db_connection_refused",
        "root_cause": "The warehouse refused connections while restarting.",
        "transient": True,
        "recommended_action": "retry",
        "confidence": 0.92,
        "fix_steps": ["Check the warehouse is up."],
        "evidence": [EXCEPTION_LINE],
        **overrides,
    }


@pytest.fixture
def excerpt(structured_log) -> dict:
    return extract_excerpt(structured_log).model_dump()


def test_tool_use_answer_becomes_a_diagnosis_with_its_cost(llm, excerpt):
    llm.script(tool_message(good_input()))
    result = diagnose_with_llm(REF, excerpt, [])
    assert result.diagnosis is not None and result.error is None
    assert result.diagnosis.diagnoser == "llm" and result.diagnosis.model == "claude-sonnet-5-5"
    assert result.diagnosis.confidence == pytest.approx(0.92)
    assert result.input_tokens > 0 and 50 < result.output_tokens < 500
    body = llm.requests[0]["body"]
    assert body["tool_choice"] == {"type": "auto"}  # current models reject a forced tool with thinking on
    assert [t["name"] for t in body["tools"]] == [TOOL_NAME]
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert "<untrusted_log>" in body["messages"][0]["content"]
    assert EXCEPTION_LINE in body["messages"][0]["content"]
    headers = llm.requests[0]["headers"]
    assert "sk-ant-test-key" in (headers.get("x-api-key", "") + headers.get("authorization", ""))


@pytest.mark.parametrize(
    ("extra", "model"),
    [
        pytest.param({"model": "claude-opus-test"}, "claude-opus-test", id="the-connections-model"),
        pytest.param({}, "claude-sonnet-5-5", id="the-default-without-one"),
    ],
)
def test_the_model_is_the_one_the_connection_names(llm, excerpt, monkeypatch, extra, model):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOCTOR_LLM",
        json.dumps({"conn_type": "anthropic", "host": llm.base_url, "password": "sk-ant-x", "extra": extra}),
    )
    llm.script(tool_message(good_input()))
    diagnose_with_llm(REF, excerpt, [])
    assert llm.requests[0]["body"]["model"] == model


def test_the_stable_prefix_is_read_from_cache_on_the_second_call(llm, excerpt):
    llm.script(tool_message(good_input()))
    first = diagnose_with_llm(REF, excerpt, [])
    second = diagnose_with_llm(REF, excerpt, [])
    assert first.cached_tokens == 0 and second.cached_tokens > 0


def test_429_with_retry_after_is_retried(llm, excerpt):
    llm.script(error(429, "rate_limit_error", headers={"retry-after": "1"}), tool_message(good_input()))
    result = diagnose_with_llm(REF, excerpt, [])
    assert result.diagnosis is not None
    assert len(llm.requests) == 2


def test_529_overloaded_is_retried(llm, excerpt):
    llm.script(error(529, "overloaded_error"), tool_message(good_input()))
    assert diagnose_with_llm(REF, excerpt, []).diagnosis is not None


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        pytest.param(error(529, "overloaded_error"), "Overloaded", id="overloaded-every-time"),
        pytest.param(error(400, "invalid_request_error"), "BadRequest", id="bad-request"),
        pytest.param(error(401, "authentication_error"), "Authentication", id="bad-key"),
        pytest.param(
            tool_message(good_input(confidence=5)), "invalid tool input", id="confidence-out-of-range"
        ),
        pytest.param(
            tool_message(good_input(recommended_action="reboot_the_cluster")),
            "invalid tool input",
            id="action-outside-the-catalogue",
        ),
        pytest.param(tool_message({"error_class": "x"}), "invalid tool input", id="fields-missing"),
        pytest.param(tool_message(good_input(), stop_reason="max_tokens"), "max_tokens", id="truncated"),
        pytest.param(text_message("I can't help with that.", stop_reason="refusal"), "refusal", id="refusal"),
        pytest.param(
            text_message("It is probably transient, retry it."), "no record_diagnosis", id="prose-no-tool"
        ),
        pytest.param(tool_message(good_input(), name="other_tool"), "no record_diagnosis", id="wrong-tool"),
        pytest.param({"status": 200, "json": {"type": "message", "content": []}}, "", id="malformed-body"),
    ],
)
def test_bad_answers_are_no_diagnosis_and_escalate(llm, excerpt, reply, reason):
    llm.script(reply)
    result = diagnose_with_llm(REF, excerpt, [])
    assert result.diagnosis is None
    assert reason in (result.error or "")
    decision = decide(None, [], [], 0, [], DoctorSettings())
    assert decision.verdict == "escalate"


def test_slow_answer_times_out_into_no_diagnosis(llm, excerpt):
    llm.script({**tool_message(good_input()), "delay": 3})
    result = diagnose_with_llm(REF, excerpt, [], timeout=0.5)
    assert result.diagnosis is None
    assert "Timeout" in result.error


def test_evidence_not_in_the_excerpt_sets_confidence_to_zero(llm, excerpt):
    llm.script(tool_message(good_input(evidence=["ConnectionRefusedError: the model made this line up"])))
    result = diagnose_with_llm(REF, excerpt, [])
    assert result.diagnosis is not None and result.diagnosis.confidence == 0.0
    runbook = Neighbour(
        case_id=1,
        kind="runbook",
        similarity=0.99,
        error_class="db_connection_refused",
        transient=True,
        recommended_action=Action.retry,
    )
    assert decide(result.diagnosis, [runbook], [], 0, [], DoctorSettings()).verdict == "escalate"


def test_unreachable_endpoint_is_no_diagnosis(monkeypatch, excerpt):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOCTOR_LLM",
        json.dumps({"conn_type": "anthropic", "host": "http://127.0.0.1:1", "password": "sk-ant-x"}),
    )
    result = diagnose_with_llm(REF, excerpt, [], timeout=1)
    assert result.diagnosis is None and "Connection" in result.error


def test_diagnose_stage_uses_the_llm_when_configured_and_labels_it(llm, excerpt):
    llm.script(tool_message(good_input()))
    out = diagnose_failure(REF, excerpt, Memory(), settings())
    assert out.llm_called and out.diagnoser == "llm"
    assert out.diagnosis.error_class == "db_connection_refused"


def test_without_a_connection_the_diagnosis_is_offline(monkeypatch, excerpt):
    monkeypatch.delenv("AIRFLOW_CONN_DOCTOR_LLM", raising=False)
    # The fixture was recorded on the one-host local stack, where a service on 127.0.0.1 is real.
    monkeypatch.setenv("AIRFLOW__DOCTOR__LOCAL_SERVICES", "True")
    out = diagnose_failure(REF, excerpt, Memory(), settings())
    assert not out.llm_called and out.diagnoser == "offline"
    assert out.diagnosis.diagnoser == "offline"
    assert out.diagnosis.transient is True  # "Connection refused" rule


def _runbook(error_class: str, transient: bool) -> Memory:
    """A memory whose one neighbour is a near-identical runbook entry of `error_class`."""
    near = Neighbour(
        case_id=9,
        kind="runbook",
        similarity=0.98,
        error_class=error_class,
        transient=transient,
        recommended_action=Action.retry if transient else Action.notify,
    )
    return Memory(neighbours=[near])


def _observed(error_class: str, transient: bool) -> Memory:
    """A memory whose one neighbour is a near-identical observed case of `error_class` with a
    verified outcome here (a retry that worked, or a person's "permanent")."""
    near = Neighbour(
        case_id=10,
        kind="observed",
        similarity=0.98,
        error_class=error_class,
        transient=transient,
        recommended_action=Action.retry if transient else Action.notify,
        outcome="succeeded" if transient else "escalated",
        actor="doctor" if transient else "human",
    )
    return Memory(neighbours=[near])


def test_memory_skips_the_llm_only_when_the_rules_read_the_error_the_same_way(llm):
    """A near-identical observed case with a verified outcome here decides without an LLM call,
    unless the rules read this error's own words the other way or their reading is disputed: then
    the failure is not known well enough, and the LLM is asked. A runbook entry's text never decides
    without the LLM."""
    llm.script(tool_message(good_input()))
    unknown_host = {
        "exception_type": "socket.gaierror",
        "message": "[Errno -2] Name or service not known",
        "text": "socket.gaierror: [Errno -2] Name or service not known",
        "causes": [],
        "source": "traceback",
    }
    disputed = diagnose_failure(REF, unknown_host, _runbook("dns_resolution_failure", True), settings())
    assert disputed.llm_called and disputed.diagnoser == "llm"
    # A runbook entry that agrees with a disputed reading is curated knowledge of the class, as the
    # rules are: it cannot settle the dispute either.
    also_disputed = diagnose_failure(
        REF, unknown_host, _runbook("connection_misconfigured", False), settings()
    )
    assert also_disputed.llm_called
    # A reading that is not disputed, and a near-copy whose outcome here agrees with it: memory decides.
    key_error = {**unknown_host, "exception_type": "KeyError", "message": "'customer_id'", "text": "KeyError"}
    agreed = diagnose_failure(REF, key_error, _observed("task_code_error", False), settings())
    assert not agreed.llm_called and agreed.diagnoser == "memory"
    # The same agreement from a runbook entry's text: the LLM is asked.
    curated = diagnose_failure(REF, key_error, _runbook("task_code_error", False), settings())
    assert curated.llm_called and curated.diagnoser == "llm"

"""The rules' reading of an excerpt (airflow_doctor/judgement/reading.py): read once, passed to every judge."""

from __future__ import annotations

import pytest

from airflow_doctor.judgement import diagnosis as diagnosis_module
from airflow_doctor.judgement import gate as gate_module
from airflow_doctor.judgement.diagnosis import (
    cross_check,
    diagnose_failure,
    diagnose_offline,
    rules_dispute_memory,
)
from airflow_doctor.judgement.gate import decide
from airflow_doctor.judgement.reading import Reading, read
from airflow_doctor.knowledge.memory import Recall
from airflow_doctor.models import Action, Diagnosis, FailureRef, Memory, Neighbour
from airflow_doctor.settings import DoctorSettings

RESET = {
    "exception_type": "ConnectionResetError",
    "message": "[Errno 104] Connection reset by peer",
    "causes": [],
    "source": "traceback",
    "text": "ConnectionResetError: [Errno 104] Connection reset by peer",
}
KEY_ERROR = {**RESET, "exception_type": "KeyError", "message": "'order_id'", "text": "KeyError: 'order_id'"}
UNKNOWN_HOST = {
    **RESET,
    "exception_type": "socket.gaierror",
    "message": "[Errno -2] Name or service not known",
    "text": "INFO - retrying soon: the service should be retried\nsocket.gaierror: [Errno -2] Name or service not known",
}
LLM_TRANSIENT = Diagnosis(
    error_class="network_blip",
    root_cause="a blip",
    transient=True,
    recommended_action=Action.retry,
    confidence=0.95,
    diagnoser="llm",
)


@pytest.mark.parametrize(
    ("excerpt", "error_class", "retry_safe", "disputed", "vetoes"),
    [
        pytest.param(RESET, "connection_reset_by_remote", True, False, False, id="a-retry-safe-class"),
        pytest.param(KEY_ERROR, "task_code_error", False, False, True, id="a-permanent-class-vetoes"),
        pytest.param(UNKNOWN_HOST, "connection_misconfigured", False, True, False, id="a-disputed-reading"),
    ],
)
def test_a_reading_says_what_every_judge_asks(excerpt, error_class, retry_safe, disputed, vetoes):
    reading = read(excerpt, local_services=False)
    assert reading.excerpt_given and reading.error_class == error_class
    assert (reading.retry_safe_class is not None) is retry_safe
    assert reading.disputed is disputed and reading.vetoes_transient is vetoes
    assert reading.authoritative and not reading.cut_off


def test_pleas_are_read_for_a_disputed_reading_and_causes_for_a_wrappers_output():
    assert read(UNKNOWN_HOST, local_services=False).pleas  # the log speaks to the judge
    assert read(RESET, local_services=False).pleas == ()  # not disputed: nothing to plead about
    cause = "ModuleNotFoundError: No module named 'acme'"
    wrapped = read({**RESET, "source": "wrapped_output", "causes": [cause]}, local_services=False)
    assert [r.error_class for r in wrapped.permanent_causes] == ["module_not_found"]
    # an exception's own chain is not evidence against it
    assert read({**RESET, "causes": [cause]}, local_services=False).permanent_causes == ()


def test_no_excerpt_is_no_rule_evidence():
    reading = read(None, local_services=False)
    assert reading == Reading(excerpt_given=False) and reading.rule is None
    assert read({}, local_services=False).excerpt_given


def test_every_judge_uses_the_reading_it_is_given(monkeypatch):
    """The pipeline reads once and passes the reading down: no judge reads the excerpt again."""

    def no_second_reading(*args, **kwargs):
        raise AssertionError("the excerpt was read again")

    vetoing = read(KEY_ERROR, local_services=False)
    monkeypatch.setattr(diagnosis_module, "read", no_second_reading)
    monkeypatch.setattr(gate_module, "read", no_second_reading)

    # The excerpt says reset; the reading given says KeyError: the reading is what counts.
    assert cross_check(LLM_TRANSIENT.model_copy(), RESET, reading=vetoing).confidence == 0.3
    assert diagnose_offline(RESET, [], [], 0.82, reading=vetoing).error_class == "task_code_error"
    near = Neighbour(
        case_id=1, kind="runbook", similarity=0.99, error_class="db_connection_lost", transient=True
    )
    assert rules_dispute_memory(Recall.of([near], [], 0.82), RESET, reading=vetoing)
    decision = decide(LLM_TRANSIENT, [], [], 0, [], DoctorSettings(), excerpt=RESET, reading=vetoing)
    assert decision.verdict == "escalate" and any("task_code_error" in r for r in decision.reasons)


def test_the_diagnose_stage_reads_the_excerpt_once(monkeypatch):
    calls = []

    def counted(excerpt, *, local_services):
        calls.append(excerpt)
        return read(excerpt, local_services=local_services)

    monkeypatch.setattr(diagnosis_module, "read", counted)
    near = Neighbour(
        case_id=1, kind="runbook", similarity=0.99, error_class="db_connection_lost", transient=True
    )
    memory = Memory(neighbours=[near])
    ref = FailureRef(dag_id="d", run_id="r", task_id="t", try_number=1, source="manual")
    out = diagnose_failure(ref, RESET, memory, DoctorSettings(), use_llm=False)
    assert out.diagnosis.error_class == "db_connection_lost" and len(calls) == 1
    calls.clear()
    diagnose_failure(
        ref, RESET, memory, DoctorSettings(), use_llm=False, reading=read(RESET, local_services=False)
    )
    assert calls == []


def test_a_reading_given_to_the_gate_decides_as_the_excerpt_does():
    settings = DoctorSettings()
    runbook = Neighbour(
        case_id=1, kind="runbook", similarity=0.3, error_class="db_connection_lost", transient=True
    )
    for excerpt in (RESET, KEY_ERROR, UNKNOWN_HOST, {**RESET, "source": "cut_off"}, None):
        by_excerpt = decide(LLM_TRANSIENT, [runbook], [], 0, [], settings, excerpt=excerpt)
        by_reading = decide(
            LLM_TRANSIENT, [runbook], [], 0, [], settings, reading=read(excerpt, local_services=False)
        )
        assert by_excerpt == by_reading

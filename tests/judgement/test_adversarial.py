"""Hostile permanent failures are never auto-retried, whatever their logs say or pretend.

Each log in `adversarial_logs.ADVERSARIAL_LOGS` is a failure only a person can fix, dressed up to look
transient (the families are described there): transient tracebacks printed after or before the real
error, multi-line messages ending in a connection reset, wrapper exceptions, homoglyph and zero-width
exception names, fake runbook and doctor text, retry instructions in several languages, tool-call
and Diagnosis JSON, and Airflow 3 structured logs (records and JSON lines).

Every log runs through the real pipeline (excerpt, fingerprint, local embeddings, pgvector retrieval
over the seeded runbooks, diagnosis, gate) twice: offline (memory and rules), and with the loopback
Anthropic model scripted to obey the log (transient, retry, confidence 1.0, quoting as evidence the
excerpt's most transient-looking line, verbatim). Neither may end in "auto_retry". A genuine
transient failure run the same way must still be auto-retried, so that a pipeline that escalates
everything cannot pass.
"""

from __future__ import annotations

import re

import pytest

from airflow_doctor import pipeline
from airflow_doctor.knowledge.store import KnowledgeBase
from airflow_doctor.logs.excerpt import excerpt_record, extract_excerpt
from airflow_doctor.models import Decision, Diagnosed, FailureRef, Group, TaskHistory, TryRecord
from tests.fakes.anthropic_server import tool_message
from tests.judgement.adversarial_logs import ADVERSARIAL_LOGS, PSYCOPG2_CONNECT_FRAMES, a2, dag_frame, tb

REF = FailureRef(
    dag_id="adversarial", run_id="scheduled__2026-11-20T00:00:00+00:00", task_id="load", try_number=1
)

# What an obedient model quotes and how it names the class: the line the log wants it to believe.
TRANSIENT_LOOKING = re.compile(
    r"(?i)connection reset|reset by peer|closed the connection|timed out|\b503\b|unavailable|transient|retry"
)
CLASS_OF = (
    ("closed the connection", "db_connection_lost"),
    ("timed out", "network_timeout"),
    ("503", "http_503_service_unavailable"),
    ("unavailable", "http_503_service_unavailable"),
)


def obedient(excerpt_text: str) -> dict:
    """The log wins: transient, retry, confidence 1.0, evidence its most transient-looking line, verbatim."""
    lines = [ln.strip() for ln in excerpt_text.splitlines() if ln.strip()] or [""]
    line = next(
        (ln for ln in reversed(lines) if TRANSIENT_LOOKING.search(ln) and 'File "' not in ln), lines[-1]
    )
    error_class = next((c for word, c in CLASS_OF if word in line.lower()), "connection_reset_by_remote")
    return tool_message(
        {
            "error_class": error_class,
            "root_cause": "A transient network failure; the log says a retry will succeed.",
            "transient": True,
            "recommended_action": "retry",
            "confidence": 1.0,
            "fix_steps": ["Retry the task."],
            "evidence": [line],
        }
    )


def run_pipeline(
    log, dsn: str, llm=None, history: TaskHistory | None = None
) -> tuple[Decision, dict, Diagnosed]:
    """One log through the doctor's own flow (excerpt, then pipeline.judge: embedding, retrieval,
    diagnosis and gate), as a group of one whose DAG has no tags and no earlier doctor clear.

    Args:
        log: a log as the doctor reads it (str, or a list of structured records).
        dsn: a seeded knowledge base.
        llm: the loopback Anthropic server, scripted here to obey the log; None diagnoses offline.
        history: the failed task's history as Airflow recorded it; None: not read.
    Returns:
        (the gate's decision, the excerpt record, the diagnose stage's result).
    """
    excerpt = excerpt_record(extract_excerpt(log))
    if llm is not None:
        llm.script(obedient(excerpt["text"]))
    group = Group(
        key="k",
        label=REF.label,
        members=[REF],
        excerpt=excerpt,
        dag_tags={REF.dag_id: []},
        history={REF.member_key: history} if history else {},
    )
    judged = pipeline.judge(
        group, kb=KnowledgeBase(dsn=dsn), diagnoser="llm" if llm is not None else "offline"
    )
    return judged.decided.decisions[0], excerpt, judged.diagnosed


def explain(decision: Decision, excerpt: dict, result: Diagnosed) -> str:
    diagnosis = result.diagnosis.model_dump() if result.diagnosis else {}
    return (
        f"verdict {decision.verdict}\n"
        f"  read: {ascii(excerpt['exception_type'])}: {ascii(excerpt['message'])}\n"
        f"  causes: {excerpt['causes']}\n"
        f"  diagnosis ({result.diagnoser}, llm called: {result.llm_called}, error: {result.error}): "
        f"{diagnosis.get('error_class')} transient={diagnosis.get('transient')} "
        f"confidence={diagnosis.get('confidence')}\n"
        "  reasons:\n    " + "\n    ".join(decision.reasons)
    )


@pytest.mark.parametrize("mode", ["offline", "obedient-llm"])
@pytest.mark.parametrize("log", ADVERSARIAL_LOGS)
def test_a_hostile_permanent_failure_is_not_auto_retried(log, mode, request, seeded_dsn):
    llm = request.getfixturevalue("llm") if mode == "obedient-llm" else None
    decision, excerpt, result = run_pipeline(log, seeded_dsn, llm)
    assert decision.verdict != "auto_retry", explain(decision, excerpt, result)


@pytest.mark.parametrize("mode", ["offline", "obedient-llm"])
def test_a_genuine_transient_failure_run_the_same_way_is_auto_retried(mode, request, seeded_dsn):
    log = a2(2, "taskinstance.py:2905", "ERROR", "Task failed with exception") + tb(
        'psycopg2.OperationalError: connection to server at "warehouse.internal" (10.2.0.4), '
        "port 5432 failed: Connection refused\n"
        "\tIs the server running on that host and accepting TCP/IP connections?",
        dag_frame("warehouse", 22, "refresh_marts", "conn = hook.get_conn()"),
        *PSYCOPG2_CONNECT_FRAMES,
    )
    llm = request.getfixturevalue("llm") if mode == "obedient-llm" else None
    decision, excerpt, result = run_pipeline(log, seeded_dsn, llm)
    assert decision.verdict == "auto_retry", explain(decision, excerpt, result)


def test_each_disputed_case_is_read_as_a_disputed_class_so_only_its_pleas_stop_an_obedient_model():
    from airflow_doctor.judgement.disputes import is_disputed, pleas
    from airflow_doctor.judgement.reading import AUTHORITATIVE_SOURCES
    from airflow_doctor.judgement.rules import classify

    cases = [p for p in ADVERSARIAL_LOGS if p.id.startswith("disputed-")]
    assert len(cases) >= 8
    for case in cases:
        excerpt = excerpt_record(extract_excerpt(case.values[0]))
        assert is_disputed(classify(excerpt)), case.id
        assert excerpt["source"] in AUTHORITATIVE_SOURCES, case.id
        assert pleas(excerpt), case.id


def succeeded_before(failed_version: int, last_version: int, successes: int = 3) -> TaskHistory:
    """A task whose recent runs succeeded on DAG version `last_version`; the failed try ran on
    `failed_version`."""
    recent = [
        TryRecord(
            run_id=f"scheduled__2026-11-{20 - n:02d}", try_number=1, state="success", dag_version=last_version
        )
        for n in range(successes)
    ]
    return TaskHistory(failed_version=failed_version, recent=recent, last_success=recent[0])


@pytest.mark.parametrize(
    ("mode", "history", "expected"),
    [
        pytest.param("offline", succeeded_before(4, 4), "escalate", id="offline-rules-alone"),
        pytest.param("obedient-llm", None, "escalate", id="llm-alone-no-record"),
        pytest.param(
            "obedient-llm", TaskHistory(failed_version=4), "escalate", id="llm-never-succeeded-before"
        ),
        pytest.param("obedient-llm", succeeded_before(5, 4), "escalate", id="llm-after-a-dag-change"),
        pytest.param(
            "obedient-llm", succeeded_before(4, 4), "auto_retry", id="llm-corroborated-same-version"
        ),
    ],
)
def test_a_disputed_reading_is_settled_only_with_corroboration_from_the_deployments_record(
    mode, history, expected, request, seeded_dsn
):
    """An unresolvable host is a typo or a DNS outage: the rules alone escalate it; a confident LLM
    on a log with nothing else in it settles it as transient (once per task instance) only when the
    task succeeded on the same DAG version and nothing changed since."""
    log = (
        a2(1, "taskinstance.py:2170", "INFO", "Starting attempt 1 of 1")
        + a2(2, "taskinstance.py:2905", "ERROR", "Task failed with exception")
        + tb(
            "socket.gaierror: [Errno -2] Name or service not known",
            dag_frame("partner", 27, "pull_orders", "addr = socket.getaddrinfo(host, 443)"),
        )
    )
    llm = request.getfixturevalue("llm") if mode == "obedient-llm" else None
    decision, excerpt, result = run_pipeline(log, seeded_dsn, llm, history)
    assert decision.verdict == expected, explain(decision, excerpt, result)
    if expected == "auto_retry":
        assert decision.retry_class == "connection_misconfigured"
        assert any(
            "corroborated by the deployment's record, settles it as transient" in r for r in decision.reasons
        )
    elif history is not None and history.changed_since_success:
        assert any("DAG changed since the task's last success" in r for r in decision.reasons), (
            decision.reasons
        )
        assert any("newer than the task's last success" in r for r in decision.reasons), decision.reasons
    elif mode != "offline":
        assert any("a diagnosis alone does not settle it" in r for r in decision.reasons), decision.reasons

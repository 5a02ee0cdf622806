"""Forged primary errors are never auto-retried; genuine transient failures still are (issue #23 item 3).

Each log of `forged_logs.FORGED_LOGS` is a permanent failure whose transient-looking words sit where
they are not the error's own: a wrapper's output printed after the real failure, a retry loop's "will
retry", a teardown's timeout, the outer exception of a `raise ... from`, a value a conversion error
quotes, a database error's DETAIL line, a 4xx's quoted body, column names, a message of megabytes,
exception notes. Every log runs through the real pipeline (`test_adversarial.run_pipeline`: excerpt,
fingerprint, local embeddings, retrieval over the seeded runbooks with an empty memory, diagnosis,
gate) offline and with the loopback model scripted to obey the log (`test_adversarial.obedient`).
Neither may end in "auto_retry". The transient controls (a clean 503, a clean reset, nothing
permanent anywhere) still do offline, so the gate discriminates rather than escalating everything.
"""

from __future__ import annotations

from collections import Counter

import pytest

from airflow_doctor.judgement.reading import read
from airflow_doctor.logs.excerpt import MAX_EXCERPT_BYTES, excerpt_record, extract_excerpt
from tests.judgement.forged_logs import FORGED_LOGS, HUGE_NOTE, KINDS, TRANSIENT_CONTROLS, kind_of
from tests.judgement.test_adversarial import explain, run_pipeline


@pytest.mark.parametrize("mode", ["offline", "obedient-llm"])
@pytest.mark.parametrize("log", FORGED_LOGS)
def test_a_forged_primary_error_is_not_auto_retried(log, mode, request, seeded_dsn):
    llm = request.getfixturevalue("llm") if mode == "obedient-llm" else None
    decision, excerpt, result = run_pipeline(log, seeded_dsn, llm)
    assert decision.verdict != "auto_retry", explain(decision, excerpt, result)


@pytest.mark.parametrize("log", TRANSIENT_CONTROLS)
def test_a_genuine_transient_failure_is_still_auto_retried_offline(log, seeded_dsn):
    decision, excerpt, result = run_pipeline(log, seeded_dsn)
    assert decision.verdict == "auto_retry", explain(decision, excerpt, result)


def test_the_set_is_what_it_claims_to_be():
    """At least 30 logs, every kind at least twice, Airflow 3 records and Airflow 2 text both; none
    reads as a clean transient to the rules (a transient reading always carries a permanent cause)."""
    ids = [p.id for p in FORGED_LOGS]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)
    per_kind = Counter(kind_of(i) for i in ids)
    assert set(per_kind) == set(KINDS) and min(per_kind.values()) >= 2, per_kind
    assert sum(".a3" in i for i in ids) >= 10 and sum(".a2" in i for i in ids) >= 10
    for p in FORGED_LOGS:
        reading = read(excerpt_record(extract_excerpt(p.values[0])), local_services=False)
        clean_transient = reading.rule is not None and reading.rule.transient and not reading.permanent_causes
        assert not clean_transient, (p.id, reading.error_class)


def _excerpt(case_id: str) -> dict:
    log = next(p.values[0] for p in FORGED_LOGS if p.id == case_id)
    return excerpt_record(extract_excerpt(log))


def test_a_wrappers_earlier_failure_stays_a_cause_and_vetoes_the_trailing_transient_line():
    excerpt = _excerpt("wrapper.a2-psql-auth-then-upload-reset")
    assert "Connection reset" in excerpt["message"]  # the last line printed is still the primary error
    assert any("password authentication failed" in c for c in excerpt["causes"])
    reading = read(excerpt, local_services=False)
    assert [r.error_class for r in reading.permanent_causes] == ["invalid_credentials"]


def test_a_direct_cause_is_kept_apart_from_a_context_and_reads_as_evidence():
    excerpt = _excerpt("chained.a2-timeout-from-insufficient-privilege")
    assert excerpt["raised_from"] == [
        "psycopg2.errors.InsufficientPrivilege: permission denied for table orders"
    ]
    reading = read(excerpt, local_services=False)
    assert reading.rule.transient and reading.permanent_causes and not reading.permanent_causes[0].transient


@pytest.mark.parametrize(
    "case_id",
    [
        "huge.a2-10mb-valueerror",
        "huge.a3-10mb-keyerror-quoting-timed-out",
        "huge.a3jsonl-10mb-unique-violation",
    ],
)
def test_a_huge_message_is_bounded_and_stays_the_primary_error(case_id):
    excerpt = _excerpt(case_id)
    assert excerpt["source"] in ("traceback", "error_detail"), excerpt["source"]
    assert excerpt["exception_type"].rsplit(".", 1)[-1] in ("ValueError", "KeyError", "UniqueViolation")
    assert len(excerpt["message"]) <= 500 and len(excerpt["text"].encode()) <= MAX_EXCERPT_BYTES
    assert f"{excerpt['exception_type']}: {excerpt['message'][:20]}" in excerpt["text"]


def test_exception_notes_are_rendered_in_the_excerpt():
    assert HUGE_NOTE in _excerpt("huge.a3-10mb-keyerror-quoting-timed-out")["text"]
    assert "after a connection reset on batch 6" in _excerpt("notes.a3-unique-note-connection-reset")["text"]

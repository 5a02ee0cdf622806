"""The knowledge base on a real Postgres with pgvector: migrations, inbox, retrieval, budget."""

from __future__ import annotations

import math
import random
from concurrent.futures import ThreadPoolExecutor

import psycopg2

from airflow_doctor.knowledge.store import KnowledgeBase
from airflow_doctor.models import FailureRef


def ref(task: str = "t", try_number: int = 1, map_index: int = -1) -> FailureRef:
    return FailureRef(dag_id="d", run_id="r", task_id=task, map_index=map_index, try_number=try_number)


def unit(vec: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vec))
    return [x / norm for x in vec]


def test_migrations_are_idempotent_and_create_the_hnsw_index(kb: KnowledgeBase, kb_dsn):
    assert kb.migrate() == []
    with psycopg2.connect(kb_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'failure_cases_embedding_hnsw'")
        indexdef = cur.fetchone()[0]
    assert "USING hnsw" in indexdef and "vector_cosine_ops" in indexdef


def test_a_failure_reported_twice_is_claimed_once(kb: KnowledgeBase):
    assert kb.record_failures([ref("a"), ref("b")]) == 2
    assert kb.record_failures([ref("a")]) == 0  # listener and sweeper report the same try
    first = kb.claim_failures("doctor-run-1")
    assert sorted(r.task_id for r in first) == ["a", "b"]
    assert kb.claim_failures("doctor-run-2") == []
    kb.record_failures([ref("a", try_number=2)])  # a new try is a new failure
    assert [(r.task_id, r.try_number) for r in kb.claim_failures("doctor-run-3")] == [("a", 2)]


def test_concurrent_claims_split_the_inbox_without_overlap(kb: KnowledgeBase):
    kb.record_failures([ref(f"t{i}") for i in range(60)])
    with ThreadPoolExecutor(6) as pool:
        claims = list(pool.map(lambda n: kb.claim_failures(f"run-{n}", limit=7), range(20)))
    claimed = [r.key for batch in claims for r in batch]
    assert len(claimed) == len(set(claimed)) == 60


def test_search_returns_nearest_by_cosine_with_outcomes(kb: KnowledgeBase):
    rng = random.Random(7)
    base = unit([rng.gauss(0, 1) for _ in range(384)])
    near = unit([x + rng.gauss(0, 0.01) for x in base])
    far = unit([rng.gauss(0, 1) for _ in range(384)])
    entries = [
        {
            "runbook_id": "near#0",
            "title": "near",
            "error_class": "db_connection_lost",
            "transient": True,
            "recommended_action": "retry",
            "fix_steps": ["wait"],
            "fingerprint": "f1",
            "excerpt": "e1",
        },
        {
            "runbook_id": "far#0",
            "title": "far",
            "error_class": "key_error",
            "transient": False,
            "recommended_action": "notify",
            "fix_steps": [],
            "fingerprint": "f2",
            "excerpt": "e2",
        },
    ]
    kb.upsert_runbooks(entries, [near, far], "test-model")
    found = kb.search_similar(base, ref(), k=2)
    assert [n.title for n in found] == ["near", "far"]
    assert found[0].similarity > 0.95 > found[1].similarity
    assert found[0].describes_retry and not found[1].describes_retry
    assert not found[0].retry_verified  # curated text, not a retry made here
    assert [n.title for n in kb.find_by_fingerprint("f2", ref())] == ["far"]


def test_observed_case_outcome_and_retry_budget(kb: KnowledgeBase):
    failure = ref("load", try_number=1)
    vec = unit([1.0] + [0.0] * 383)
    case_id = kb.record_case(
        ref=failure,
        case={
            "operator": "PythonOperator",
            "fingerprint": "fp",
            "excerpt": "x",
            "embedding": vec,
            "embedding_model": "m",
        },
        diagnosis={
            "error_class": "db_connection_refused",
            "transient": True,
            "recommended_action": "retry",
            "confidence": 0.9,
            "diagnoser": "offline",
        },
        decision={"verdict": "auto_retry", "reasons": ["r"], "similarity": 0.97},
        cleared=True,
        doctor_run_id="doc-1",
    )
    assert case_id > 0
    assert kb.count_doctor_clears(failure) == 0  # the budget counts clears, recorded before the API call
    assert kb.record_clear(failure, "doc-1") is True
    assert kb.record_clear(failure, "doc-2") is False  # a second doctor run never clears the same try
    assert kb.record_clear(ref("load", try_number=2), "doc-3") is True
    assert kb.count_doctor_clears(ref("load", try_number=3)) == 2
    other = ref("other")
    [neighbour] = kb.search_similar(vec, other, k=1)
    assert neighbour.kind == "observed" and neighbour.outcome == "pending"
    assert kb.search_similar(vec, failure, k=1) == []  # a case never matches itself


def test_dead_database_raises_a_clear_error():
    dead = KnowledgeBase(dsn="postgresql://postgres@127.0.0.1:1/doctor", connect_timeout=1)
    try:
        dead.claim_failures("x")
    except psycopg2.OperationalError as exc:
        assert "Connection refused" in str(exc) or "could not connect" in str(exc)
    else:
        raise AssertionError("expected OperationalError")


def _auto_retried(kb: KnowledgeBase, failure: FailureRef, retry_class: str | None, fingerprint: str = "fp-c"):
    return kb.record_case(
        ref=failure,
        case={"fingerprint": fingerprint, "excerpt": "x", "embedding": None, "embedding_model": "m"},
        diagnosis={
            "error_class": "connection_reset_by_remote",
            "transient": True,
            "recommended_action": "retry",
            "confidence": 0.9,
        },
        decision={"verdict": "auto_retry", "reasons": [], "retry_class": retry_class},
        cleared=True,
        doctor_run_id="doc",
    )


def test_an_unverified_retry_is_not_left_pending_forever(kb: KnowledgeBase):
    failure = ref("slow")
    _auto_retried(kb, failure, "connection_reset_by_remote")
    assert kb.set_outcome(failure, "unverified") == 1
    [match] = kb.find_by_fingerprint("fp-c", ref("other"))
    assert match.outcome == "unverified" and match.actor == "doctor"
    assert not match.retry_verified and not match.retry_failed


def test_class_outcomes_count_the_doctors_verified_retries_since_a_person_looked(kb: KnowledgeBase):
    for i, outcome in enumerate(["succeeded", "failed", "failed", None]):
        failure = ref(f"c{i}")
        _auto_retried(kb, failure, "connection_reset_by_remote")
        if outcome:
            kb.set_outcome(failure, outcome)
    _auto_retried(kb, ref("other-class"), "rate_limited")
    assert kb.class_outcomes("connection_reset_by_remote") == {
        "retry_class": "connection_reset_by_remote",
        "succeeded": 1,
        "failed": 2,
    }
    # A person's answer on a failure of that class ("a person looked") starts the count again.
    kb.record_case(
        ref=ref("looked"),
        case={"fingerprint": "fp-h", "excerpt": "x", "embedding": None, "embedding_model": "m"},
        diagnosis=None,
        decision={"verdict": "escalate", "reasons": [], "retry_class": "connection_reset_by_remote"},
        cleared=False,
        doctor_run_id="doc",
        actor="human",
    )
    assert kb.class_outcomes("connection_reset_by_remote")["failed"] == 0


def test_a_persons_transient_reads_as_a_failed_retry_when_the_try_it_started_failed(kb: KnowledgeBase):
    """A person answered "transient: retry it now" on try 1; their clear started try 2, which failed
    the same way. Asked about try 2, memory must not say a retry of this fingerprint succeeded (the
    retry in question is the failure asking); asked from another task, the answer still counts."""
    from airflow_doctor.knowledge.store import UIStore

    first = ref("load", try_number=1)
    case_id = kb.record_case(
        ref=first,
        case={"operator": "PythonOperator", "fingerprint": "fp-answered", "excerpt": "x"},
        diagnosis=None,
        decision={"verdict": "escalate", "reasons": ["r"], "similarity": None},
        cleared=False,
        doctor_run_id="doc-1",
    )
    UIStore(dsn=kb.dsn).record_answer(case_id, answer="transient", user_name="oncall", cleared=True)

    [same_ti] = kb.find_by_fingerprint("fp-answered", ref("load", try_number=2))
    assert same_ti.case_id == case_id and same_ti.actor == "human"
    assert same_ti.outcome == "failed" and same_ti.retry_failed and not same_ti.retry_verified

    [elsewhere] = kb.find_by_fingerprint("fp-answered", ref("other_task", try_number=1))
    assert elsewhere.outcome == "succeeded" and elsewhere.retry_verified

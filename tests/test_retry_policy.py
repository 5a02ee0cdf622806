"""The doctor as an Airflow 3.3 retry policy, on a real Postgres with pgvector (docs/retry-policy.md)."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import time
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import psycopg2
import pytest
import structlog
from airflow.providers.common.compat.sdk import ChainRetryPolicy
from airflow.sdk.definitions.retry_policy import ExceptionRetryPolicy, RetryAction, RetryRule

from airflow_doctor import retry_policy as rp
from airflow_doctor.knowledge.store import KnowledgeBase, UIStore
from airflow_doctor.logs.excerpt import excerpt_record, extract_excerpt
from airflow_doctor.models import FailureRef
from airflow_doctor.retry_policy import DoctorRetryPolicy, StaticDoctorRetryPolicy
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
REASON = re.compile(
    r"^airflow-doctor: fingerprint [0-9a-f]{12} proven (transient|permanent) here \([\w ,.:-]+\)$"
)


def raised(make) -> BaseException:
    """The exception `make()` raises, with its traceback and chain, as a task would raise it."""
    try:
        make()
    except Exception as exc:  # noqa: BLE001 - the exception is the test's subject
        return exc
    raise AssertionError("nothing raised")


def throw(exc: BaseException):
    raise exc


class OperationalError(Exception):
    """Named like psycopg2's, raised without the driver."""


def _reset():
    raise ConnectionResetError(104, "Connection reset by peer")


def _chained():
    try:
        {}["customer_id"]
    except KeyError as exc:
        raise RuntimeError("Failed to load batch 42") from exc


def _group():
    raise ExceptionGroup("2 tasks failed", [TimeoutError("read timed out after 30s"), ValueError("x")])


def _dbt():
    raise RuntimeError(
        "('dbt command failed', '12:00:01  Running with dbt=1.8.0', '12:00:03  Encountered an error:', "
        "'Database Error in model orders (models/orders.sql)', '  relation \"raw.orders\" does not exist')"
    )


EXCEPTIONS = {
    "connection-reset": _reset,
    "driver-error-with-host-and-port": lambda: throw(
        OperationalError(
            'connection to server at "db-7.prod.internal" (10.0.3.7), port 5432 failed: '
            "server closed the connection unexpectedly"
        )
    ),
    "wrapper-gives-way-to-its-cause": _chained,
    "secret-in-the-message-is-redacted": lambda: throw(
        ValueError("login failed: password=hunter2 for user bob at 2026-12-01T10:00:00Z")
    ),
    "multi-line-message": lambda: throw(ValueError("bad row 17\n  column amount: 'abc'")),
    "exception-group": _group,
    "no-message": lambda: {}["k"],
    "cosmos-wrapper-of-dbt": _dbt,
}


def airflow3_log(exc: BaseException) -> str:
    """The JSON-lines task log Airflow 3 writes when the task runner logs `exc` failing the task: the
    task process's structlog processors in JSON mode (airflow.sdk._shared.logging.structlog), then the
    supervisor's rename of `exception` to `error_detail` (airflow/sdk/execution_time/supervisor.py)."""
    from airflow.sdk._shared.logging.structlog import structlog_processors

    shared, renderer, _ = structlog_processors(json_output=True)
    out = io.StringIO()
    logger = structlog.wrap_logger(structlog.PrintLogger(out), processors=[*shared, renderer])
    logger.info("Pushing xcom", ti="x")
    try:
        raise exc
    except BaseException:  # noqa: BLE001 - re-raising the subject to log it as the task runner does
        logger.exception("Task failed with exception")
    lines = []
    for line in out.getvalue().splitlines():
        event = json.loads(line)
        if "exception" in event:
            event["error_detail"] = event.pop("exception")
        lines.append(json.dumps(event))
    return "\n".join(lines)


@pytest.mark.parametrize("name", sorted(EXCEPTIONS))
def test_the_policy_fingerprints_an_exception_as_the_doctor_does_its_log(name):
    exc = raised(EXCEPTIONS[name])
    log_text = airflow3_log(exc)
    assert '"error_detail"' in log_text
    doctors = excerpt_record(extract_excerpt(log_text))
    assert doctors["source"] in {"error_detail", "wrapped_output"}
    assert rp.fingerprint_of(exc) == doctors["fingerprint"]


def test_the_fingerprint_reads_through_wrappers_and_redacts():
    assert rp.primary_error(raised(_chained)) == ("KeyError", "'customer_id'")
    _, message = rp.primary_error(raised(EXCEPTIONS["secret-in-the-message-is-redacted"]))
    assert "hunter2" not in message


def test_a_wrapper_of_printed_output_is_not_fingerprinted():
    """Its real error is in the lines the task printed, which only the doctor reads."""

    def bash():
        raise RuntimeError("Bash command failed. The command returned a non-zero exit code 1.")

    assert rp.fingerprint_of(raised(bash)) is None
    assert DoctorRetryPolicy(conn_id="nowhere").evaluate(raised(bash), 1, 3).action is RetryAction.DEFAULT


# -- the knowledge base ------------------------------------------------------------------------------

RESET = raised(_reset)
FP = rp.fingerprint_of(RESET)


def ti(task_id: str = "load", run_id: str = "r9") -> SimpleNamespace:
    return SimpleNamespace(dag_id="etl", run_id=run_id, task_id=task_id, map_index=-1)


def context(task_id: str = "load", run_id: str = "r9", retry_delay: float = 0.0) -> dict:
    task = SimpleNamespace(retry_delay=timedelta(seconds=retry_delay), retry_exponential_backoff=0)
    return {"ti": ti(task_id, run_id), "task": task}


def case(
    kb: KnowledgeBase,
    n: int,
    outcome: str,
    *,
    fingerprint: str = FP,
    action: str = "retry",
    actor: str = "doctor",
    run_id: str | None = None,
    try_number: int = 1,
) -> int:
    """An observed case of `fingerprint` whose latest remediation ended in `outcome`."""
    verdict = {"doctor": "auto_retry", "airflow": "airflow_retry", "human": "escalate"}[actor]
    return kb.record_case(
        ref=FailureRef(dag_id="etl", run_id=run_id or f"old-{n}", task_id="load", try_number=try_number),
        case={"fingerprint": fingerprint, "excerpt": "x", "embedding": None, "embedding_model": "m"},
        diagnosis={
            "error_class": "connection_reset_by_remote",
            "transient": True,
            "recommended_action": action,
            "confidence": 0.9,
        },
        decision={"verdict": verdict, "reasons": [], "retry_class": "connection_reset_by_remote"},
        cleared=actor == "doctor",
        doctor_run_id="doc",
        outcome=outcome,
        actor=actor,
    )


def decisions(dsn: str) -> list[tuple]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT dag_id, run_id, task_id, map_index, try_number, fingerprint, action, reason, delay_seconds "
            "FROM doctor.policy_decisions ORDER BY id"
        )
        return cur.fetchall()


def test_a_fingerprint_proven_transient_is_retried_with_its_backoff_and_recorded(
    doctor_db_conn, kb, monkeypatch
):
    monkeypatch.setenv("AIRFLOW__DOCTOR__RETRY_BACKOFF_SECONDS", "5")
    case(kb, 1, "succeeded", action="retry_with_backoff")
    case(kb, 2, "succeeded", action="retry_with_backoff", actor="airflow")
    decision = DoctorRetryPolicy().evaluate(RESET, 2, 4, context())
    assert decision.action is RetryAction.RETRY
    assert decision.retry_delay == timedelta(seconds=10)  # 5 s doubled for the second try
    assert REASON.match(decision.reason), decision.reason
    assert f"fingerprint {FP[:12]} proven transient here (2 verified retries, last 20" in decision.reason
    assert decisions(doctor_db_conn) == [("etl", "r9", "load", -1, 2, FP, "retry", decision.reason, 10.0)]
    # The author's longer retry_delay wins; a plain retry diagnosis keeps the task's own delay.
    assert DoctorRetryPolicy().evaluate(RESET, 2, 4, context(retry_delay=60)).retry_delay is None


def test_a_persons_transient_answer_counts_as_a_verified_retry(doctor_db_conn, kb):
    case(kb, 1, "succeeded")
    answered = case(kb, 2, "escalated", actor="human")
    UIStore(dsn=doctor_db_conn).record_answer(answered, answer="transient", user_name="ann")
    decision = DoctorRetryPolicy().evaluate(RESET, 1, 3, context())
    assert decision.action is RetryAction.RETRY and decision.retry_delay is None


@pytest.mark.parametrize(
    "way", ["person-answered-permanent", "failed-retries", "fixed_by_change", "fixed_by_person"]
)
def test_a_fingerprint_proven_permanent_fails_at_once(doctor_db_conn, kb, way):
    case(kb, 1, "succeeded")
    case(kb, 2, "succeeded")
    if way == "person-answered-permanent":
        UIStore(dsn=doctor_db_conn).record_answer(
            case(kb, 3, "escalated"), answer="permanent", user_name="ann"
        )
        why = "a person answered permanent on 1 case"
    elif way == "failed-retries":
        case(kb, 3, "failed")
        case(kb, 4, "failed")
        why = "2 failed retries since its last verified retry"
    else:
        case(kb, 3, way, actor="airflow")
        why = f"fixed by {rp.FIXED_BY[way]} since its last verified retry"
    decision = DoctorRetryPolicy().evaluate(RESET, 1, 3, context())
    assert decision.action is RetryAction.FAIL
    assert decision.reason == f"airflow-doctor: fingerprint {FP[:12]} proven permanent here ({why})"
    assert [row[6] for row in decisions(doctor_db_conn)] == ["fail"]


def test_a_failed_retry_after_the_last_verified_success_is_not_retried(doctor_db_conn, kb):
    case(kb, 1, "succeeded")
    case(kb, 2, "succeeded")
    case(kb, 3, "failed")
    assert DoctorRetryPolicy().evaluate(RESET, 1, 3, context()).action is RetryAction.DEFAULT
    case(kb, 4, "succeeded")  # it healed again since: proven transient once more
    assert DoctorRetryPolicy().evaluate(RESET, 1, 3, context()).action is RetryAction.RETRY


def test_what_is_not_proven_is_left_to_airflow_or_to_on_unknown(doctor_db_conn, kb):
    case(kb, 1, "succeeded")  # one verified retry is not a pattern
    case(kb, 2, "pending")
    case(kb, 3, "failed", fingerprint="0" * 16)
    assert DoctorRetryPolicy().evaluate(RESET, 1, 3, context()).action is RetryAction.DEFAULT
    assert decisions(doctor_db_conn) == []
    assert DoctorRetryPolicy(min_verified=1).evaluate(RESET, 1, 3, context()).action is RetryAction.RETRY
    strict = DoctorRetryPolicy(on_unknown=RetryAction.FAIL).evaluate(raised(_chained), 1, 3, context())
    assert strict.action is RetryAction.FAIL and "not proven here" in strict.reason
    with pytest.raises(ValueError, match="never retries"):
        DoctorRetryPolicy(on_unknown=RetryAction.RETRY)


def test_the_task_instances_own_earlier_tries_are_not_evidence(doctor_db_conn, kb):
    case(kb, 1, "failed", run_id="r9", try_number=1)
    case(kb, 2, "failed", run_id="r9", try_number=2)
    assert DoctorRetryPolicy().evaluate(RESET, 3, 3, context(run_id="r9")).action is RetryAction.DEFAULT
    assert DoctorRetryPolicy().evaluate(RESET, 1, 3, context(run_id="r10")).action is RetryAction.FAIL


def test_the_lookup_is_served_by_the_fingerprint_index(kb, kb_dsn):
    """With 5000 other cases analysed, the planner reads the fingerprint's cases by its index, and the
    latest remediation and answer of each by theirs."""
    from airflow_doctor.knowledge.store import sql

    case(kb, 1, "succeeded")
    with psycopg2.connect(kb_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO doctor.failure_cases (kind, dag_id, run_id, task_id, map_index, try_number, fingerprint) "
            "SELECT 'observed', 'd', 'r' || g, 't', -1, 1, left(md5(g::text), 16) FROM generate_series(1, 5000) g"
        )
        cur.execute("ANALYZE doctor.failure_cases")
        params = {"fingerprint": FP, "dag_id": "etl", "run_id": "r", "task_id": "t", "map_index": -1}
        cur.execute("EXPLAIN " + sql("policy_evidence"), params)
        plan = "\n".join(row[0] for row in cur.fetchall())
    assert "failure_cases_fingerprint" in plan and "remediations_case_latest" in plan, plan
    assert "Seq Scan" not in plan, plan


def test_an_unreachable_knowledge_base_is_default_within_three_seconds(monkeypatch, caplog):
    dead = {"conn_type": "postgres", "host": "127.0.0.1", "port": free_port(), "login": "postgres"}
    monkeypatch.setenv("AIRFLOW_CONN_DEAD_DB", json.dumps(dead))
    started = time.monotonic()
    decision = DoctorRetryPolicy(conn_id="dead_db").evaluate(RESET, 1, 3, context())
    assert decision.action is RetryAction.DEFAULT
    assert time.monotonic() - started < 3
    assert "no decision (OperationalError" in caplog.text
    # No such connection at all, and no context: DEFAULT too.
    assert DoctorRetryPolicy(conn_id="no_such_conn").evaluate(RESET, 1, 3, None).action is RetryAction.DEFAULT


def test_a_decision_stands_when_it_cannot_be_recorded(doctor_db_conn, kb):
    case(kb, 1, "failed")
    case(kb, 2, "failed")
    with psycopg2.connect(doctor_db_conn) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE doctor.policy_decisions")
    assert DoctorRetryPolicy().evaluate(RESET, 1, 3, context()).action is RetryAction.FAIL


# -- composition and Airflow ---------------------------------------------------------------------------


def test_chained_after_the_authors_policy(doctor_db_conn, kb):
    case(kb, 1, "succeeded")
    case(kb, 2, "succeeded")
    author_fails = ExceptionRetryPolicy(rules=[RetryRule(exception=ConnectionError, action=RetryAction.FAIL)])
    author_silent = ExceptionRetryPolicy(rules=[RetryRule(exception=KeyError, action=RetryAction.FAIL)])
    first = ChainRetryPolicy([author_fails, DoctorRetryPolicy()]).evaluate(RESET, 1, 3, context())
    assert first.action is RetryAction.FAIL and first.reason.startswith("ExceptionRetryPolicy:")
    second = ChainRetryPolicy([author_silent, DoctorRetryPolicy()]).evaluate(RESET, 1, 3, context())
    assert second.action is RetryAction.RETRY
    assert second.reason.startswith(
        f"DoctorRetryPolicy: airflow-doctor: fingerprint {FP[:12]} proven transient"
    )


def _dag():
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    with DAG(
        "policy_dag", schedule=None, default_args={"retries": 2, "retry_policy": DoctorRetryPolicy()}
    ) as dag:
        EmptyOperator(task_id="from_default_args")
        EmptyOperator(task_id="own", retry_policy=DoctorRetryPolicy(min_verified=3))
    return dag


def test_a_dag_with_the_policy_parses_and_serialises():
    from airflow.serialization.serialized_objects import DagSerialization

    dag = _dag()
    assert isinstance(dag.get_task("from_default_args").retry_policy, DoctorRetryPolicy)
    assert dag.get_task("own").retry_policy.min_verified == 3
    restored = DagSerialization.from_dict(json.loads(json.dumps(DagSerialization.to_dict(dag))))
    assert all(restored.get_task(t).has_retry_policy for t in ("from_default_args", "own"))


def _docs_cluster_policy() -> dict:
    """The `airflow_local_settings.py` code of docs/retry-policy.md, run as Airflow would import it."""
    text = (ROOT / "docs" / "retry-policy.md").read_text(encoding="utf-8")
    [code] = [block for block in re.findall(r"```python\n(.*?)```", text, re.S) if "def task_policy" in block]
    namespace: dict = {}
    exec(compile(code, "airflow_local_settings.py", "exec"), namespace)  # noqa: S102 - the docs' own code
    return namespace


def test_the_documented_cluster_policy_adds_the_doctor_once():
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    task_policy = _docs_cluster_policy()["task_policy"]
    author = ExceptionRetryPolicy(rules=[RetryRule(exception=KeyError, action=RetryAction.FAIL)])
    with DAG("etl", schedule=None):
        bare = EmptyOperator(task_id="bare")
        authored = EmptyOperator(task_id="authored", retry_policy=author)
    with DAG("doctor", schedule=None):
        doctors = EmptyOperator(task_id="diagnose")
    for task in (bare, authored, doctors):
        task_policy(task)
        task_policy(task)  # a second run (a re-parse) adds nothing
    assert isinstance(bare.retry_policy, DoctorRetryPolicy)
    assert isinstance(authored.retry_policy, ChainRetryPolicy)
    assert authored.retry_policy.policies[0] is author
    assert [type(p).__name__ for p in authored.retry_policy.policies] == [
        "ExceptionRetryPolicy",
        "DoctorRetryPolicy",
    ]
    assert doctors.retry_policy is None


# -- export ----------------------------------------------------------------------------------------------


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_export_round_trip(kb, kb_dsn, tmp_path, monkeypatch, capsys):
    from airflow_doctor.cli import main

    monkeypatch.setenv("AIRFLOW__DOCTOR__RETRY_BACKOFF_SECONDS", "4")
    chained = rp.fingerprint_of(raised(_chained))
    case(kb, 1, "succeeded", action="retry_with_backoff")
    case(kb, 2, "succeeded", action="retry_with_backoff")
    case(kb, 3, "failed", fingerprint=chained)
    case(kb, 4, "failed", fingerprint=chained)
    case(kb, 5, "succeeded", fingerprint="f" * 16)  # one verified retry: not exported
    out = tmp_path / "doctor_policy.py"
    assert main(["export-policy", "--out", str(out), "--dsn", kb_dsn]) == 0
    assert "1 transient and 1 permanent fingerprints" in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    assert f"exported {date.today().isoformat()}" in text
    assert "password" not in text and "postgres" not in text and "customer_id" not in text
    module = load_module(out)
    assert list(module.FINGERPRINTS) == sorted([FP, chained])
    assert module.FINGERPRINTS[FP]["delay_seconds"] == 4.0
    assert all(REASON.match(entry["reason"]) for entry in module.FINGERPRINTS.values())
    assert sorted(rp.RETRY_SAFE_EXCEPTIONS) == module.RETRY_SAFE_EXCEPTIONS

    policy = module.retry_policy
    assert isinstance(policy.policies[0], StaticDoctorRetryPolicy)
    retry = policy.evaluate(RESET, 2, 3, context())
    assert retry.action is RetryAction.RETRY and retry.retry_delay == timedelta(seconds=8)
    assert module.FINGERPRINTS[FP]["reason"] in retry.reason
    assert policy.evaluate(raised(_chained), 1, 3, context()).action is RetryAction.FAIL
    assert policy.evaluate(raised(lambda: {}["k"]), 1, 3, context()).action is RetryAction.DEFAULT
    reset_unknown = raised(lambda: throw(ConnectionResetError("reset while reading the body")))
    by_class = policy.evaluate(reset_unknown, 1, 3, context())
    assert by_class.action is RetryAction.RETRY and "retry-safe exception class" in by_class.reason

    # Deterministic: the same knowledge base gives the same file.
    again = tmp_path / "again.py"
    assert main(["export-policy", "--out", str(again), "--dsn", kb_dsn]) == 0
    assert again.read_text(encoding="utf-8") == text


def test_a_static_table_takes_only_retry_or_fail():
    with pytest.raises(ValueError, match="'retry' or 'fail'"):
        StaticDoctorRetryPolicy({"ab": {"action": "default", "reason": "x"}})
    assert StaticDoctorRetryPolicy({}).evaluate(RESET, 1, 3).action is RetryAction.DEFAULT


def test_the_backoff_cap_is_the_doctors():
    from airflow_doctor.judgement.gate import BACKOFF_CAP_SECONDS

    assert rp.BACKOFF_CAP_SECONDS == BACKOFF_CAP_SECONDS
    assert rp.retry_delay(1.0, 20) == timedelta(seconds=BACKOFF_CAP_SECONDS)


def test_the_package_exports_the_policies_lazily():
    import airflow_doctor

    assert airflow_doctor.DoctorRetryPolicy is DoctorRetryPolicy
    assert airflow_doctor.StaticDoctorRetryPolicy is StaticDoctorRetryPolicy
    with pytest.raises(AttributeError):
        airflow_doctor.NoSuchPolicy  # noqa: B018 - the attribute access is the test

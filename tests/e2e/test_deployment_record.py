"""The deployment's record as evidence, end to end on a real Airflow 3.3 (docs/gate.md, "Evidence
sources"): Airflow's own retries teach memory, a DAG version newer than the task's last success is a
change, a failure a new DAG version fixed is not retried when it recurs, the history import reads
what happened before the doctor was installed, and a disputed reading is settled only with
corroboration from the record.

Its own stack, on a DAGs folder of its own (the doctor's two DAG files plus the DAGs written here), so
a test can change a DAG file and Airflow writes a new DAG version. `doctor_llm` points at the
loopback Messages API server, scripted as a model sure that every failure is transient (an obedient
model): whatever it says, the record decides.
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest

from scripts.demo import api_for, kb_for, trigger, wait_for_dags, wait_until
from scripts.stack import PROJECT_ROOT, down, up
from tests.e2e.conftest import stack_config
from tests.fakes.anthropic_server import AnthropicLoopback, tool_message

pytestmark = pytest.mark.e2e

#: Airflow's retry (try 2) of a failing try runs this long after it: time for the sweeper's pass
#: and for the dag-processor to see a changed file (its refresh interval is 5 s on the test stack).
SLOW_RETRY_SECONDS = 25

DAG_TEMPLATE = '''
"""{doc}"""

from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task


@dag(
    dag_id="{dag_id}",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    default_args={{"owner": "data-eng", "retries": {retries}, "retry_delay": timedelta(seconds={delay})}},
    params={{"fail_tries": 0}},
    tags=["e2e"],
)
def {dag_id}():
    @task
    def {task_id}() -> int:
        context = get_current_context()
        try_number = context["ti"].try_number
        print(f"Reading the partner feed (attempt {{try_number}})")
        if try_number <= int(context["params"].get("fail_tries") or 0):
{raise_block}
        return {version_marker}

    {task_id}()


{dag_id}()
'''


def dag_source(
    dag_id: str, task_id: str, raise_line: str, *, retries: int, delay: int, marker: int = 1, setup: str = ""
) -> str:
    """A DAG file whose task fails while its try_number <= the run's `fail_tries` param, raising
    `raise_line`; `marker` changes the DAG's doc_md (and what the task returns): Airflow writes a new
    DAG version when the DAG's serialised form changes, which a task's code alone does not."""
    raise_block = textwrap.indent((setup + "\n" if setup else "") + raise_line, " " * 12)
    return DAG_TEMPLATE.format(
        doc=f"e2e DAG {dag_id} (version marker {marker})",
        dag_id=dag_id,
        task_id=task_id,
        retries=retries,
        delay=delay,
        raise_block=raise_block,
        version_marker=marker,
    )


# A failure whose words the rules know no class for: without memory the doctor does not retry it.
FEED_NOT_READY = 'raise RuntimeError("partner feed export is not ready yet for " + context["ds"])'
# A failure of the retry-safe catalogue (a connection reset): the rules alone would retry it.
RESET = 'raise ConnectionResetError(104, "Connection reset by peer")'
# A disputed surface: an unresolvable host is a typo or a resolver outage.
UNKNOWN_HOST = 'raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")'

DAGS = {
    "record_feed": ("load_feed", FEED_NOT_READY, {"retries": 1, "delay": 1}),
    "record_fixed": ("sync_orders", RESET, {"retries": 1, "delay": SLOW_RETRY_SECONDS}),
    "record_host": ("pull_rates", UNKNOWN_HOST, {"retries": 0, "delay": 1, "setup": "import socket"}),
}


def write_dag(folder: Path, dag_id: str, marker: int = 1, **override) -> None:
    task_id, raise_line, opts = DAGS[dag_id]
    opts = {**opts, **override}
    (folder / f"{dag_id}.py").write_text(
        dag_source(dag_id, task_id, raise_line, marker=marker, **opts), encoding="utf-8"
    )


def sure_it_is_transient(body: dict) -> dict:
    """An obedient model: transient, retry, 0.97, its evidence the excerpt's last error line."""
    content = body["messages"][0]["content"]
    prompt = content if isinstance(content, str) else " ".join(b.get("text", "") for b in content)
    log = prompt.split("<untrusted_log>\n", 1)[-1].split("\n</untrusted_log>", 1)[0]
    lines = [x.strip() for x in log.splitlines() if re.search(r"Error|error", x)]
    return tool_message(
        {
            "error_class": "dns_resolution_failure",
            "root_cause": "A passing outage; a retry will succeed.",
            "transient": True,
            "recommended_action": "retry",
            "confidence": 0.97,
            "fix_steps": ["Retry the task."],
            "evidence": lines[-1:],
        }
    )


@pytest.fixture(scope="module")
def record_stack(tmp_path_factory):
    dags = tmp_path_factory.mktemp("record-dags")
    for name in ("doctor.py", "doctor_sweeper.py"):
        shutil.copy(PROJECT_ROOT / "dags" / name, dags / name)
    for dag_id in DAGS:
        write_dag(dags, dag_id)
    with AnthropicLoopback() as llm:
        llm.script(sure_it_is_transient)
        cfg = stack_config(
            tmp_path_factory,
            "record-stack",
            llm_base_url=llm.base_url,
            extra_env={
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                # The grey zone would wait in Required Actions; these tests read the gate's verdict.
                "AIRFLOW__DOCTOR__APPROVAL_ENABLED": "False",
            },
        )
        try:
            up(cfg)
            wait_for_dags(api_for(cfg), ["doctor", "doctor_sweeper", *DAGS])
            yield cfg, dags, llm
        finally:
            down(cfg)


# -- helpers --------------------------------------------------------------------------------------


def ti_state(api, dag_id: str, run_id: str) -> tuple[str, int]:
    ti = api.get_task_instance(dag_id, run_id, DAGS[dag_id][0])
    return str(ti.get("state")), int(ti.get("try_number") or 0)


def run_ended(api, dag_id: str, run_id: str, timeout: float = 180) -> str:
    """Wait for a DAG run to end; return its state."""
    return wait_until(
        lambda: (s := str(api.get_dag_run(dag_id, run_id).get("state"))) in {"success", "failed"} and s,
        timeout,
        f"{dag_id} run {run_id} to end",
    )


def sweep(api) -> None:
    """Run the doctor_sweeper DAG once, to its end (it learns from Airflow's retries)."""
    run = trigger(api, "doctor_sweeper")
    assert run_ended(api, "doctor_sweeper", run, 240) == "success"


def rows(stack, query: str, *params) -> list[tuple]:
    with psycopg2.connect(stack.database_uri("doctor")) as conn, conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall() if cur.description else []


def airflow_cases(stack, dag_id: str) -> list[tuple]:
    """(run_id, try_number, outcome, transient) of the cases Airflow's retries taught, oldest first."""
    return rows(
        stack,
        "SELECT c.run_id, c.try_number, r.outcome, c.transient FROM doctor.failure_cases c "
        "JOIN doctor.remediations r ON r.case_id = c.id AND r.actor = 'airflow' "
        "WHERE c.dag_id = %s ORDER BY c.id",
        dag_id,
    )


def doctor_decision(stack, dag_id: str, run_id: str, timeout: float = 240) -> tuple[str, list[str]]:
    """The doctor's decision (verdict, reasons) about a run's failure, once recorded."""

    def found():
        got = rows(
            stack,
            "SELECT r.decision, r.reasons FROM doctor.failure_cases c "
            "JOIN doctor.remediations r ON r.case_id = c.id AND r.actor = 'doctor' "
            "WHERE c.dag_id = %s AND c.run_id = %s ORDER BY r.id LIMIT 1",
            dag_id,
            run_id,
        )
        return got[0] if got else None

    return wait_until(found, timeout, f"the doctor's decision on {dag_id} {run_id}")


def dag_versions(api, dag_id: str) -> int:
    return int(api.request_json("GET", f"/api/v2/dags/{dag_id}/dagVersions").get("total_entries") or 0)


def change_dag(api, folder: Path, dag_id: str, marker: int, **override) -> None:
    """Rewrite a DAG file and wait until Airflow records the new DAG version."""
    before = dag_versions(api, dag_id)
    write_dag(folder, dag_id, marker=marker, **override)
    wait_until(lambda: dag_versions(api, dag_id) > before, 120, f"a new DAG version of {dag_id}")


# -- the tests ------------------------------------------------------------------------------------


def test_airflows_own_retry_teaches_memory_and_the_same_failure_failing_for_good_is_healed(record_stack):
    stack, _, _ = record_stack
    api = api_for(stack)
    # Run 1: try 1 fails, Airflow's own retry succeeds. No doctor run: the try was not final.
    first = trigger(api, "record_feed", {"fail_tries": 1})
    assert run_ended(api, "record_feed", first) == "success"
    assert ti_state(api, "record_feed", first) == ("success", 2)
    sweep(api)
    assert airflow_cases(stack, "record_feed") == [(first, 1, "succeeded", True)]

    # Run 2: both of Airflow's tries fail the same way; the doctor's retry (try 3) succeeds.
    second = trigger(api, "record_feed", {"fail_tries": 2})
    verdict, reasons = doctor_decision(stack, "record_feed", second)
    assert verdict == "auto_retry", reasons
    assert any("Airflow's own retry succeeded here" in r for r in reasons), reasons
    wait_until(lambda: ti_state(api, "record_feed", second) == ("success", 3), 120, "the doctor's retry")


def test_a_failure_a_new_dag_version_fixed_is_not_retried_when_it_recurs(record_stack):
    stack, folder, _ = record_stack
    api = api_for(stack)
    run = trigger(api, "record_fixed", {"fail_tries": 1})
    wait_until(lambda: ti_state(api, "record_fixed", run)[0] == "up_for_retry", 120, "try 1 to fail")
    # The fix is deployed while Airflow waits to retry: try 2 runs on the new DAG version.
    change_dag(api, folder, "record_fixed", marker=2, delay=1)
    assert run_ended(api, "record_fixed", run, 240) == "success"
    tries = api.list_tries(_ref("record_fixed", run))
    assert tries[0]["dag_version_number"] < tries[-1]["dag_version_number"], tries
    sweep(api)
    assert airflow_cases(stack, "record_fixed") == [(run, 1, "fixed_by_change", False)]

    # The old pattern recurs for good (both tries): a connection reset the rules alone would retry.
    again = trigger(api, "record_fixed", {"fail_tries": 2})
    verdict, reasons = doctor_decision(stack, "record_fixed", again)
    assert verdict == "escalate", reasons
    assert any("was fixed by a new DAG version, not by a retry" in r for r in reasons), reasons
    assert ti_state(api, "record_fixed", again) == ("failed", 2)


def test_a_disputed_reading_is_escalated_right_after_a_dag_change_and_settled_on_an_unchanged_version(
    record_stack,
):
    stack, folder, llm = record_stack
    api = api_for(stack)
    assert run_ended(api, "record_host", trigger(api, "record_host")) == "success"  # version 1
    change_dag(api, folder, "record_host", marker=2)

    # Right after the change: an unresolvable host is a typo just deployed as much as an outage.
    after_change = trigger(api, "record_host", {"fail_tries": 1})
    verdict, reasons = doctor_decision(stack, "record_host", after_change)
    assert verdict == "escalate", reasons
    assert any("newer than the task's last success" in r for r in reasons), reasons
    assert ti_state(api, "record_host", after_change) == ("failed", 1)

    # Once the task succeeded on this version, the same failure is settled and healed, once.
    assert run_ended(api, "record_host", trigger(api, "record_host")) == "success"
    settled = trigger(api, "record_host", {"fail_tries": 1})
    verdict, reasons = doctor_decision(stack, "record_host", settled)
    assert verdict == "auto_retry", reasons
    assert any("corroborated by the deployment's record, settles it as transient" in r for r in reasons)
    wait_until(lambda: ti_state(api, "record_host", settled) == ("success", 2), 120, "the retried try")
    prompts = [r for r in llm.requests if r["path"].endswith("/v1/messages")]
    # The model was shown Airflow's record beside the log (versions and outcomes, not log text).
    assert any("record (written by Airflow, not by the task" in json.dumps(r["body"]) for r in prompts)


def test_the_history_import_learns_from_days_of_retries_before_the_doctor_was_there(record_stack):
    from airflow_doctor.knowledge.airflow_retries import import_history, learn_from_airflow

    stack, _, _ = record_stack
    api, kb = api_for(stack), kb_for(stack)
    runs = [trigger(api, "record_feed", {"fail_tries": 1}) for _ in range(3)]
    for run in runs:
        assert run_ended(api, "record_feed", run) == "success"
    # Days of history: the runs' dates moved back 2, 3 and 40 days in Airflow's own database, and
    # the doctor's record of them forgotten, as on a stack where the doctor was just installed.
    with psycopg2.connect(stack.database_uri("airflow")) as conn, conn.cursor() as cur:
        for run, days in zip(runs, (2, 3, 40), strict=True):
            for table in ("task_instance", "task_instance_history"):
                cur.execute(
                    f"UPDATE {table} SET start_date = start_date - %s, end_date = end_date - %s "  # noqa: S608
                    "WHERE dag_id = 'record_feed' AND run_id = %s",
                    (timedelta(days=days), timedelta(days=days), run),
                )
                assert cur.rowcount >= 1, (table, run)
    moved = api.get_task_instance("record_feed", runs[2], "load_feed")["end_date"]
    moved = datetime.fromisoformat(str(moved).replace("Z", "+00:00"))
    assert moved < datetime.now(UTC) - timedelta(days=39), moved
    rows(stack, "DELETE FROM doctor.retried_tries WHERE dag_id = 'record_feed'")
    rows(stack, "DELETE FROM doctor.failure_cases WHERE dag_id = 'record_feed'")
    rows(stack, "DELETE FROM doctor.history_imports")

    lines: list[str] = []
    found = import_history(days=30, api=api, kb=kb, progress=lines.append)
    learn_from_airflow(api=api, kb=kb, now=datetime.now(UTC))
    learnt = {run for run, _, outcome, _ in airflow_cases(stack, "record_feed") if outcome == "succeeded"}
    assert learnt >= set(runs[:2]) and runs[2] not in learnt, (found, lines)
    assert lines, "the import printed no progress"
    assert found["new"] >= 2 and found["finished"], found
    again = import_history(days=30, api=api, kb=kb, progress=lines.append)
    assert again["new"] == 0, again  # resumable: what was noted is not noted twice


def _ref(dag_id: str, run_id: str):
    from airflow_doctor.models import FailureRef

    return FailureRef(dag_id=dag_id, run_id=run_id, task_id=DAGS[dag_id][0], try_number=1, source="manual")

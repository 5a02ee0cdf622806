"""
### doctor

Self-healing for failed task instances. Scheduled by asset events on `doctor://task-failures`
(posted by the doctor's listener when a task instance fails for good) and triggerable by hand:
fill in the form to diagnose one failed task instance.

Each failure becomes one mapped instance of the `handle_failure` group, labelled `dag_id.task_id`:
fetch_logs → embed_failure → retrieve_similar → diagnose → gate_on_confidence →
clear_and_retry **or** escalate → notify_humans → record_case. The logic lives in `include/doctor/`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowSkipException

from include.doctor.config import FAILURE_ASSET_NAME, FAILURE_ASSET_URI, LLM_POOL

LABEL = "{{ failure_label }}"


def _label(ref: dict) -> None:
    """Name this mapped task instance after the failure it handles (shown in the UI)."""
    suffix = f"[{ref['map_index']}]" if ref.get("map_index", -1) >= 0 else ""
    get_current_context()["failure_label"] = f"{ref['dag_id']}.{ref['task_id']}{suffix}"


@dag(
    dag_id="doctor",
    schedule=Asset(name=FAILURE_ASSET_NAME, uri=FAILURE_ASSET_URI),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    default_args={"owner": "airflow-doctor", "retries": 0},
    tags=["doctor", "doctor:off"],
    params={
        "dag_id": Param("", type="string", title="DAG id", description="DAG of the failed task instance."),
        "run_id": Param(
            "", type="string", title="Run id", description="DAG run of the failed task instance."
        ),
        "task_id": Param("", type="string", title="Task id", description="The failed task."),
        "map_index": Param(
            -1, type="integer", minimum=-1, title="Map index", description="-1 if not mapped."
        ),
        "try_number": Param(
            0,
            type="integer",
            minimum=0,
            title="Try number",
            description="The failed try; 0 means the task instance's latest try.",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Diagnose and notify; clear nothing, write no note, record nothing.",
        ),
    },
)
def doctor():
    @task
    def collect_failures() -> list[dict]:
        from include.doctor.capture import collect_failures

        ctx = get_current_context()
        events = [e for evs in (ctx.get("triggering_asset_events") or {}).values() for e in evs]
        return collect_failures(events, dict(ctx["params"]), ctx["run_id"])

    @task_group
    def handle_failure(ref: dict):
        @task(map_index_template=LABEL)
        def fetch_logs(ref: dict) -> dict:
            from include.doctor.logs import fetch_failure_excerpt

            _label(ref)
            return fetch_failure_excerpt(ref)

        @task(map_index_template=LABEL)
        def embed_failure(ref: dict, excerpt: dict) -> dict:
            from include.doctor.embeddings import embed_failure

            _label(ref)
            return embed_failure(excerpt)

        @task(map_index_template=LABEL)
        def retrieve_similar(ref: dict, excerpt: dict, embedding: dict) -> dict:
            from include.doctor.store import retrieve_similar

            _label(ref)
            return retrieve_similar(ref, excerpt, embedding)

        @task(map_index_template=LABEL, pool=LLM_POOL)
        def diagnose(ref: dict, excerpt: dict, memory: dict) -> dict:
            from include.doctor.diagnosis import diagnose

            _label(ref)
            return diagnose(ref, excerpt, memory)

        @task(map_index_template=LABEL)
        def gate_on_confidence(ref: dict, diagnosis: dict, memory: dict) -> dict:
            from include.doctor.gate import gate_on_confidence

            _label(ref)
            return gate_on_confidence(ref, diagnosis, memory)

        @task(map_index_template=LABEL)
        def clear_and_retry(ref: dict, decision: dict, diagnosis: dict) -> dict:
            from include.doctor.remediation import clear_and_retry

            _label(ref)
            if decision["verdict"] != "auto_retry":
                raise AirflowSkipException(f"gate verdict: {decision['verdict']}")
            ctx = get_current_context()
            return clear_and_retry(ref, decision, diagnosis, ctx["run_id"], dry_run=ctx["params"]["dry_run"])

        @task(map_index_template=LABEL)
        def escalate(ref: dict, decision: dict, diagnosis: dict) -> dict:
            from include.doctor.remediation import escalate

            _label(ref)
            if decision["verdict"] == "auto_retry":
                raise AirflowSkipException("gate verdict: auto_retry")
            return escalate(ref, decision, diagnosis, dry_run=get_current_context()["params"]["dry_run"])

        @task(map_index_template=LABEL, trigger_rule="none_failed_min_one_success")
        def notify_humans(
            ref: dict, excerpt: dict, diagnosis: dict, decision: dict, memory: dict, remediation: dict | None
        ) -> dict:
            from include.doctor.notify import notify_humans

            _label(ref)
            return notify_humans(
                ref, excerpt, diagnosis, decision, memory, remediation, get_current_context()["run_id"]
            )

        @task(map_index_template=LABEL, trigger_rule="all_done")
        def record_case(
            ref: dict,
            excerpt: dict,
            embedding: dict,
            diagnosis: dict,
            decision: dict,
            remediation: dict | None,
        ) -> int | None:
            from include.doctor.remediation import record_case

            _label(ref)
            ctx = get_current_context()
            if ctx["params"]["dry_run"]:
                raise AirflowSkipException("dry_run: nothing is recorded")
            return record_case(ref, excerpt, embedding, diagnosis, decision, remediation, ctx["run_id"])

        excerpt = fetch_logs(ref)
        embedding = embed_failure(ref, excerpt)
        memory = retrieve_similar(ref, excerpt, embedding)
        diagnosis = diagnose(ref, excerpt, memory)
        decision = gate_on_confidence(ref, diagnosis, memory)
        retried = clear_and_retry(ref, decision, diagnosis)
        escalated = escalate(ref, decision, diagnosis)
        notified = notify_humans(ref, excerpt, diagnosis, decision, memory, retried)
        escalated >> notified
        notified >> record_case(ref, excerpt, embedding, diagnosis, decision, retried)

    handle_failure.expand(ref=collect_failures())


doctor()

"""
### doctor

Self-healing for failed task instances. Scheduled by asset events on `doctor://task-failures`
(posted by the doctor's listener and sweeper when a task instance fails for good) and triggerable
by hand: fill in the form to diagnose one failed task instance.

Each failure becomes one mapped instance of `handle_failure`, labelled `dag_id.task_id`:
fetch_logs → embed_failure → retrieve_similar → diagnose → gate_on_confidence → clear_and_retry
(auto) **or** prepare_approval → request_approval → clear_after_approval (grey zone) **or**
escalate → record_case → verify_retry → notify_humans. `summarize_run` writes this run's note.
The logic lives in `include/doctor/`.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Asset, Param, PokeReturnValue, dag, get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowSkipException

from include.doctor.config import FAILURE_ASSET_NAME, FAILURE_ASSET_URI, LLM_POOL

LABEL = "{{ failure_label }}"
# Parse-time settings come from the environment (Variables are read at run time, not at parse time).
APPROVAL_TIMEOUT = timedelta(minutes=float(os.environ.get("DOCTOR_APPROVAL_TIMEOUT_MINUTES", "60")))
VERIFY_POKE_SECONDS = float(os.environ.get("DOCTOR_VERIFY_POKE_SECONDS", "5"))


def _label(ref: dict) -> dict:
    """Name this mapped task instance after the failure it handles (shown in the UI); return the context."""
    ctx = get_current_context()
    suffix = f"[{ref['map_index']}]" if ref.get("map_index", -1) >= 0 else ""
    ctx["failure_label"] = f"{ref['dag_id']}.{ref['task_id']}{suffix}"
    return ctx


def _cleared(*remediations: dict | None) -> dict | None:
    return next((r for r in remediations if r and r.get("cleared")), None)


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

            ctx = _label(ref)
            if decision["verdict"] != "auto_retry":
                raise AirflowSkipException(f"gate verdict: {decision['verdict']}")
            return clear_and_retry(ref, decision, diagnosis, ctx["run_id"], dry_run=ctx["params"]["dry_run"])

        @task(map_index_template=LABEL, multiple_outputs=True)
        def prepare_approval(ref: dict, excerpt: dict, diagnosis: dict, decision: dict, memory: dict) -> dict:
            from include.doctor.notify import notify_approval_request

            ctx = _label(ref)
            if decision["verdict"] != "approval" or ctx["params"]["dry_run"]:
                raise AirflowSkipException(f"gate verdict: {decision['verdict']}")
            return notify_approval_request(ref, excerpt, diagnosis, decision, memory, ctx["run_id"])

        @task(map_index_template=LABEL)
        def clear_after_approval(ref: dict, decision: dict, diagnosis: dict, approval: dict) -> dict:
            from include.doctor.remediation import approver, clear_and_retry

            ctx = _label(ref)
            return clear_and_retry(ref, decision, diagnosis, ctx["run_id"], approved_by=approver(approval))

        @task(map_index_template=LABEL, trigger_rule="all_done")  # also when the approval request failed
        def escalate(
            ref: dict, decision: dict, diagnosis: dict, retried: dict | None, approved: dict | None
        ) -> dict:
            from include.doctor.remediation import escalate

            ctx = _label(ref)
            if _cleared(retried, approved):
                raise AirflowSkipException("cleared for retry: nothing to escalate")
            # Pulled, not passed: an argument would make this task a direct downstream of the approval,
            # which skips its direct downstream on "Reject".
            approval = ctx["ti"].xcom_pull(
                task_ids="handle_failure.request_approval", map_indexes=ctx["ti"].map_index
            )
            return escalate(ref, decision, diagnosis, retried, approval, dry_run=ctx["params"]["dry_run"])

        @task(map_index_template=LABEL, trigger_rule="all_done")
        def record_case(
            ref: dict,
            excerpt: dict,
            embedding: dict,
            diagnosis: dict,
            decision: dict,
            retried: dict | None,
            approved: dict | None,
        ) -> int | None:
            from include.doctor.remediation import record_case

            ctx = _label(ref)
            if ctx["params"]["dry_run"]:
                raise AirflowSkipException("dry_run: nothing is recorded")
            remediation = _cleared(retried, approved) or retried or approved
            return record_case(ref, excerpt, embedding, diagnosis, decision, remediation, ctx["run_id"])

        @task.sensor(
            map_index_template=LABEL,
            trigger_rule="none_failed",
            mode="reschedule",
            poke_interval=VERIFY_POKE_SECONDS,
            timeout=6 * 3600,
        )
        def verify_retry(ref: dict, retried: dict | None, approved: dict | None) -> PokeReturnValue:
            from include.doctor.remediation import check_retry

            _label(ref)
            cleared = _cleared(retried, approved)
            if not cleared:
                raise AirflowSkipException("nothing was cleared")
            result = check_retry(ref, cleared)
            return PokeReturnValue(is_done=result is not None, xcom_value=result)

        @task(map_index_template=LABEL, trigger_rule="all_done")
        def notify_humans(
            ref: dict,
            excerpt: dict,
            diagnosis: dict,
            decision: dict,
            memory: dict,
            retried: dict | None,
            approved: dict | None,
            escalation: dict | None,
            verification: dict | None,
        ) -> dict:
            from include.doctor.notify import notify_humans

            ctx = _label(ref)
            remediation = _cleared(retried, approved) or retried or approved
            return notify_humans(
                ref,
                excerpt,
                diagnosis,
                decision,
                memory,
                remediation,
                ctx["run_id"],
                escalation,
                verification,
            )

        excerpt = fetch_logs(ref)
        embedding = embed_failure(ref, excerpt)
        memory = retrieve_similar(ref, excerpt, embedding)
        diagnosis = diagnose(ref, excerpt, memory)
        decision = gate_on_confidence(ref, diagnosis, memory)
        retried = clear_and_retry(ref, decision, diagnosis)
        ask = prepare_approval(ref, excerpt, diagnosis, decision, memory)
        approval = ApprovalOperator(
            task_id="request_approval",
            subject=ask["subject"],
            body=ask["body"],
            defaults="Reject",
            response_timeout=APPROVAL_TIMEOUT,
        )
        approved = clear_after_approval(ref, decision, diagnosis, approval.output)
        escalation = escalate(ref, decision, diagnosis, retried, approved)
        case = record_case(ref, excerpt, embedding, diagnosis, decision, retried, approved)
        escalation >> case
        verification = verify_retry(ref, retried, approved)
        case >> verification
        notify_humans(ref, excerpt, diagnosis, decision, memory, retried, approved, escalation, verification)

    @task(trigger_rule="all_done")
    def summarize_run() -> str:
        from include.doctor.remediation import summarize_run

        ctx = get_current_context()
        return summarize_run(ctx["run_id"], dry_run=ctx["params"]["dry_run"])

    handle_failure.expand(ref=collect_failures()) >> summarize_run()


doctor()

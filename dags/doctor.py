"""
### doctor

Self-healing for failed task instances. Scheduled by asset events on `doctor://task-failures`
(posted by the doctor's listener and sweeper when a task instance fails for good) and triggerable
by hand: fill in the form to diagnose one failed task instance.

`collect_failures` claims every unhandled failure, reads each failed try's log and groups the
failures by fingerprint (a storm of one cause is one group). Each group becomes one mapped
instance of `handle_failures`, labelled `dag_id.task_id[map_index]` (plus "+N more" for a group):
diagnose_and_retry (embed, retrieve similar cases, diagnose once, gate each member, clear the
members the gate sent to auto-retry) **or** prepare_approval → request_approval →
clear_after_approval (grey zone) **or** escalate → record_case → verify_retry → notify_humans
(one message, or one digest for a group).
`summarize_run` writes this run's note. The logic lives in `include/doctor/`.
"""

from __future__ import annotations

import os
import time
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
APPROVAL_RESULT_WAIT_SECONDS = 60


def _retried(judged: dict | None) -> list | None:
    """The auto-retry clears diagnose_and_retry made, per member (None when it made none or failed)."""
    return (judged or {}).get("retried")


def _label(group: dict) -> dict:
    """Name this mapped task instance after the failures it handles (shown in the UI); return the context."""
    ctx = get_current_context()
    ctx["failure_label"] = group["label"]
    return ctx


@dag(
    dag_id="doctor",
    schedule=Asset(name=FAILURE_ASSET_NAME, uri=FAILURE_ASSET_URI),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    # Ahead of queued pipeline tasks: remediation must not wait behind the backlog it is healing.
    default_args={"owner": "airflow-doctor", "retries": 0, "priority_weight": 100, "weight_rule": "absolute"},
    tags=["doctor", "doctor:off"],
    params={
        # The form's limits mirror FailureRef's (include/doctor/models.py), which checks them again.
        "dag_id": Param(
            "", type="string", maxLength=250, title="DAG id", description="DAG of the failed task instance."
        ),
        "run_id": Param(
            "",
            type="string",
            maxLength=250,
            title="Run id",
            description="DAG run of the failed task instance.",
        ),
        "task_id": Param("", type="string", maxLength=250, title="Task id", description="The failed task."),
        "map_index": Param(
            -1,
            type="integer",
            minimum=-1,
            maximum=2**31 - 1,
            title="Map index",
            description="-1 if not mapped.",
        ),
        "try_number": Param(
            0,
            type="integer",
            minimum=0,
            maximum=2**31 - 1,
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
    @task(max_active_tis_per_dag=1)  # one claim at a time: a storm is claimed whole (capture.settle_storm)
    def collect_failures() -> list[dict]:
        from include.doctor.capture import collect_failures
        from include.doctor.groups import group_failures

        ctx = get_current_context()
        events = [e for evs in (ctx.get("triggering_asset_events") or {}).values() for e in evs]
        return group_failures(collect_failures(events, dict(ctx.get("params") or {}), ctx["run_id"]))

    @task_group
    def handle_failures(group: dict):
        @task(map_index_template=LABEL, pool=LLM_POOL)
        def diagnose_and_retry(group: dict) -> dict:
            """Embed, retrieve, diagnose once, gate each member, and clear the members the gate sent
            to auto_retry: the fast path in one task process (a task costs ~1 s of start-up)."""
            from include.doctor.groups import judge_and_clear

            ctx = _label(group)
            return judge_and_clear(group, ctx["run_id"], dry_run=ctx["params"]["dry_run"])

        @task(map_index_template=LABEL, multiple_outputs=True)
        def prepare_approval(group: dict, judged: dict) -> dict:
            from include.doctor.groups import approval_request

            ctx = _label(group)
            ask = None if ctx["params"]["dry_run"] else approval_request(group, judged, ctx["run_id"])
            if ask is None:
                raise AirflowSkipException("no failure of this group is in the grey zone (or dry_run)")
            return ask

        @task(map_index_template=LABEL)
        def clear_after_approval(group: dict, judged: dict, approval: dict) -> list:
            from include.doctor.groups import clear_group
            from include.doctor.remediation import approver

            ctx = _label(group)
            if not approver(approval):
                raise AirflowSkipException(f"not approved: {(approval or {}).get('chosen_options')}")
            return clear_group(group, judged, ctx["run_id"], approved_by=approver(approval))

        @task(map_index_template=LABEL, trigger_rule="all_done")  # also when the approval request failed
        def escalate(group: dict, judged: dict | None, approved: list | None) -> list:
            from include.doctor.groups import escalate_group, judged_or_escalate, with_verdict

            ctx = _label(group)
            approval = None
            if with_verdict(judged_or_escalate(judged, group), "approval") and not ctx["params"]["dry_run"]:
                # Pulled, not passed: an argument would make this task a direct downstream of the
                # approval, which skips it on "Reject". On "Reject" this task can start before the
                # approval task has stored its answer (Airflow 3.3), so wait for it a little.
                deadline = time.monotonic() + APPROVAL_RESULT_WAIT_SECONDS
                while approval is None and time.monotonic() < deadline:
                    approval = ctx["ti"].xcom_pull(
                        task_ids="handle_failures.request_approval", map_indexes=ctx["ti"].map_index
                    )
                    time.sleep(0 if approval else 1)
            return escalate_group(
                group, judged, _retried(judged), approved, approval, dry_run=ctx["params"]["dry_run"]
            )

        @task(map_index_template=LABEL, trigger_rule="all_done")
        def record_case(group: dict, judged: dict | None, approved: list | None, escalations: list) -> list:
            from include.doctor.groups import record_group

            ctx = _label(group)
            if ctx["params"]["dry_run"]:
                raise AirflowSkipException("dry_run: nothing is recorded")
            return record_group(group, judged, _retried(judged), approved, ctx["run_id"], escalations)

        @task.sensor(
            map_index_template=LABEL,
            trigger_rule="none_failed",
            mode="reschedule",
            poke_interval=VERIFY_POKE_SECONDS,
            timeout=6 * 3600,
        )
        def verify_retry(group: dict, judged: dict | None, approved: list | None) -> PokeReturnValue:
            from include.doctor.groups import check_group

            _label(group)
            retried = _retried(judged)
            if not any(r and r.get("cleared") for r in (retried or []) + (approved or [])):
                raise AirflowSkipException("nothing was cleared")
            result = check_group(group, retried, approved)
            return PokeReturnValue(is_done=result["done"], xcom_value=result["verifications"])

        @task(map_index_template=LABEL, trigger_rule="all_done")
        def notify_humans(
            group: dict,
            judged: dict | None,
            approved: list | None,
            escalations: list | None,
            verifications: list | None,
        ) -> list:
            from include.doctor.groups import notify_group

            ctx = _label(group)
            return notify_group(
                group, judged, _retried(judged), approved, escalations, verifications, ctx["run_id"]
            )

        judged = diagnose_and_retry(group)
        ask = prepare_approval(group, judged)
        approval = ApprovalOperator(
            task_id="request_approval",
            subject=ask["subject"],
            body=ask["body"],
            defaults="Reject",
            response_timeout=APPROVAL_TIMEOUT,
        )
        approved = clear_after_approval(group, judged, approval.output)
        escalations = escalate(group, judged, approved)
        cases = record_case(group, judged, approved, escalations)
        verifications = verify_retry(group, judged, approved)
        cases >> verifications
        notify_humans(group, judged, approved, escalations, verifications)

    @task(trigger_rule="all_done")
    def summarize_run() -> str:
        from include.doctor.remediation import summarize_run

        ctx = get_current_context()
        return summarize_run(ctx["run_id"], dry_run=ctx["params"]["dry_run"])

    handle_failures.expand(group=collect_failures()) >> summarize_run()


doctor()

"""Classic operators of the doctor DAG: the stages that wait, branch or preload.

`DiagnoseOperator` is the diagnose stage (pipeline.diagnose); it starts importing the LLM client in a
background thread before its inputs are read from XCom (diagnosis.preload_llm_client).

`GateOperator` is gate_on_confidence, a branch operator that also skips the branches not taken
inside the mapped task group (Airflow 3.3's SkipMixin skips only unmapped downstream tasks).

`ClearAndRetryOperator` is the clear_and_retry stage: when the gate asked for a backoff it defers to
the standard provider's `DateTimeTrigger` (the wait runs in the triggerer; the task holds no worker
or pool slot while it waits), then clears in `execute_complete`; a remainder of at most
`[doctor] backoff_sleep_max_seconds` is slept in the task instead. Without a backoff it clears at once, in
one task process, unless a member's try is not yet recorded as failed: that wait is deferred to
`triggers.FailedStateTrigger`.

`FetchLogsOperator` is fetch_logs: it puts the reported failures in the inbox and, when a storm is
arriving, defers to `triggers.StormSettledTrigger` until the burst has settled, then claims it whole
and reads the logs in `execute_complete`; without a storm it claims at once, in one task process.

`VerifyRetryOperator` is verify_retry: it checks once, and if a retried try is still running it
defers to `triggers.RetryOutcomeTrigger`, which polls in the triggerer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.bases.branch import BaseBranchOperator

from airflow_doctor.models import Diagnosed, Group, GroupDecision
from airflow_doctor.settings import read_option

#: The doctor DAG's mapped task group: one instance per failure group fetch_logs returned.
GROUP_ID = "handle_failures"

#: The stage each gate verdict leads to (GateOperator follows the downstream task of that stage).
BRANCH_STAGES = {"auto_retry": "clear_and_retry", "approval": "prepare_approval", "escalate": "escalate"}


def _label(context, group: Group | None) -> None:
    """Name this mapped task instance after its group's failures (map_index_template)."""
    context["failure_label"] = group.label if isinstance(group, Group) else ""


def stage_xcom(ti, stage: str, key: str = "return_value") -> Any:
    """The XCom `key` of `stage` (a task of the `handle_failures` group) at `ti`'s map index, or
    None (the stage was skipped, or failed without pushing).

    The stages read what earlier stages produced here, inside the task, instead of taking it as
    arguments: an XComArg argument is an edge in the Graph view, and one edge per argument drew 48
    edges for a flow of 16 (issue #24). Only the direct upstream's output is passed as an argument.
    """
    return ti.xcom_pull(task_ids=f"{GROUP_ID}.{stage}", key=key, map_indexes=ti.map_index)


def group_xcom(ti) -> Group:
    """`ti`'s failure Group: embed_failure pushes it (XCom key "group") as it starts; when it died
    before that, fetch_logs' list read at `ti`'s map index.

    Raises:
        RuntimeError: neither XCom holds it.
    """
    group = stage_xcom(ti, "embed_failure", key="group")
    if group is None:
        groups = ti.xcom_pull(task_ids="fetch_logs", map_indexes=-1) or []
        group = groups[ti.map_index] if 0 <= ti.map_index < len(groups) else None
    if group is None:
        raise RuntimeError("this instance's failure group is in no XCom (fetch_logs, embed_failure)")
    return Group.model_validate(group) if isinstance(group, dict) else group


def _given_or_pulled(context, given: Any, stage: str, key: str = "return_value") -> Any:
    """`given` (an argument of the operator), else `stage`'s XCom at this map index (stage_xcom);
    None outside a task run (no task instance in `context`)."""
    if given is not None or context.get("ti") is None:
        return given
    return stage_xcom(context["ti"], stage, key)


def _group_of(context, given: Group | None) -> Group:
    """`given`, else this instance's Group (group_xcom), labelled (map_index_template)."""
    group = given if given is not None else group_xcom(context["ti"])
    _label(context, group)
    return group


class DiagnoseOperator(BaseOperator):
    """The diagnose stage (pipeline.diagnose), run in the `doctor_llm` pool.

    Before Airflow reads the task's inputs from XCom (render_templates), `prepare_for_execution`
    starts importing the Anthropic provider's hook and SDK in a daemon thread when connection
    `doctor_llm` exists (diagnosis.preload_llm_client), so the ~1.1 s import overlaps the XCom reads
    and the stage's memory check instead of following them; offline (no connection) nothing is
    imported.

    Args (templated, usually XComArgs): memory (retrieve_similar's Memory, None when that task
    failed); group (Group; None: this instance's, `group_xcom`).
    Returns (XCom): Diagnosed (pipeline.diagnose). Raises StageError when no diagnosis came out.
    """

    template_fields = ("group", "memory")

    def __init__(self, *, group: Any = None, memory: Any = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.group = group
        self.memory = memory

    def prepare_for_execution(self):
        """Start the LLM client's import (called by the task runner before render_templates)."""
        from airflow_doctor.judgement.diagnosis import preload_llm_client

        preload_llm_client()
        return super().prepare_for_execution()

    def execute(self, context) -> Diagnosed:
        from airflow_doctor.pipeline import diagnose, stage_result

        group = _group_of(context, self.group)
        return stage_result(diagnose(group, self.memory))


class InstanceBranchOperator(BaseBranchOperator):
    """A branch operator inside the mapped `handle_failures` group that skips the branches it does
    not follow at its own map index.

    Airflow 3.3.2's SkipMixin sets the branches not taken to skipped only for an unmapped branch
    task ("future mapped tasks have not been expanded yet"), and NotPreviouslySkippedDep looks up
    the branch's XCom at map_index -1 for a task of a mapped task group (apache/airflow#67265, open;
    fixes proposed in #70926 and #72594), so without this the
    branches not taken each started a task process that then skipped itself, beside
    clear_and_retry (bench/mttr, 2026-12-05: prepare_approval and escalate ran 1.5 s each, started
    with clear_and_retry). Here the skip is sent to the execution API with this instance's map
    index (its `skip-downstream` route takes (task_id, map_index) pairs); a task instance that does
    not exist yet is not touched, and the branch tasks still skip themselves (pipeline._skip).
    """

    @staticmethod
    def _set_state_to_skipped(tasks: Sequence[str | tuple[str, int]], map_index: int | None) -> None:
        """Skip `tasks` ((task_id, map_index) pairs of this run) whatever this instance's map index."""
        from airflow.sdk.exceptions import DownstreamTasksSkipped

        if tasks:
            raise DownstreamTasksSkipped(tasks=list(tasks))


class GateOperator(InstanceBranchOperator):
    """gate_on_confidence: gate each member (pipeline.gate_on_confidence), push the GroupDecision as
    XCom key "decided" and follow one branch per verdict present.

    The branches are discovered from the operator's downstream tasks, by the stage each verdict
    leads to (`BRANCH_STAGES`: a downstream task whose id, without its task group's prefix, is
    that stage): wire the DAG and the gate follows it, no task id is named twice. The branches not
    taken are skipped at this instance's map index (`InstanceBranchOperator`).

    In a dry run (Param dry_run) it follows no branch: it pushes what the doctor would have done
    (XCom key "dry_run_verdict": pipeline.dry_run_verdict) for the run's note, and nothing is
    cleared, asked or sent.

    Args (templated, usually XComArgs): diagnosed (Diagnosed or None); group (Group) and memory
    (Memory) when given, else read from XCom (`group_xcom`, retrieve_similar's).
    Returns (XCom): the followed task ids; key "decided": the GroupDecision.
    """

    template_fields = ("group", "memory", "diagnosed")

    def __init__(self, *, group: Any = None, memory: Any = None, diagnosed: Any = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.group = group
        self.memory = memory
        self.diagnosed = diagnosed

    def choose_branch(self, context) -> Iterable[str]:
        from airflow_doctor.pipeline import dry_run_verdict, gate_on_confidence

        group = _group_of(context, self.group)
        memory = _given_or_pulled(context, self.memory, "retrieve_similar")
        decided = gate_on_confidence(group, memory, self.diagnosed)
        context["ti"].xcom_push(key="decided", value=decided)
        if _truthy((context.get("params") or {}).get("dry_run")):
            context["ti"].xcom_push(key="dry_run_verdict", value=dry_run_verdict(group, decided))
            return []  # a dry run acts on nothing: every branch is skipped
        return self.branches(decided)

    def branches(self, decided: GroupDecision) -> list[str]:
        """The downstream task ids to follow: the stage of each verdict present among the members.

        Raises:
            ValueError: a verdict present has no downstream task (the DAG is wired wrong).
        """
        follow = []
        for verdict, stage in BRANCH_STAGES.items():
            if not decided.members_with(verdict):
                continue
            found = [t for t in sorted(self.downstream_task_ids) if t.rsplit(".", 1)[-1] == stage]
            if not found:
                raise ValueError(f"{self.task_id} has no downstream task {stage!r} for verdict {verdict!r}")
            follow += found
        return follow


class RecordCaseOperator(InstanceBranchOperator):
    """record_case: record every member of the group as a case (pipeline.record_case), push the case
    ids (XCom key "case_ids") and follow verify_retry only when a member was cleared
    (pipeline.follow_after_record). An escalated or rejected group skips verify_retry at this map
    index, and report_retry after it by its none_skipped rule: neither starts a task process (they
    did, only to skip themselves: two of the 12.9 task processes of an escalation, bench/mttr
    2026-12-08). A dry run records nothing and skips itself (verify_retry then skips itself).

    Reads the group and the stages' outputs from XCom (`group_xcom`, `stage_xcom`).
    Returns (XCom): the followed task ids. Raises StageError when no case could be recorded (then
    verify_retry still runs, by its all_done rule: a retry that happened is still verified).
    """

    def choose_branch(self, context) -> Iterable[str]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_doctor.pipeline import follow_after_record, record_case

        group = _group_of(context, None)
        ti = context["ti"]
        if _truthy((context.get("params") or {}).get("dry_run")):
            raise AirflowSkipException("dry_run: nothing is recorded")
        retried, approved = stage_xcom(ti, "clear_and_retry"), stage_xcom(ti, "act_on_approval")
        ids = record_case(
            group,
            stage_xcom(ti, "embed_failure"),
            stage_xcom(ti, "diagnose"),
            stage_xcom(ti, "gate_on_confidence", key="decided"),
            retried,
            approved,
            stage_xcom(ti, "escalate"),
            context["run_id"],
        )
        ti.xcom_push(key="case_ids", value=ids)
        return follow_after_record(retried, approved, group)


class ClearAndRetryOperator(BaseOperator):
    """Clear the auto-retried members of a group after their backoff (pipeline.clear_and_retry).

    The backoff counts from the failure (pipeline.retry_at). What is left of it when the task starts
    is slept in the task when it is at most `[doctor] backoff_sleep_max_seconds` (default 3: the
    measured deferral round trip is ~2.6 s, so a
    shorter remainder clears sooner slept than deferred, holding the worker slot no longer than
    that); a longer one is deferred to the triggerer (DateTimeTrigger), holding no worker slot.
    Then, if a member's try is not yet recorded as failed (Airflow records it after the try's
    process exits), the wait for it is deferred too (triggers.FailedStateTrigger).

    Args (templated, usually XComArgs): decided (GroupDecision), dry_run (bool); group (Group) and
    diagnosed (Diagnosed) when given, else read from XCom (`group_xcom`, diagnose's).
    Returns (XCom): pipeline.clear_and_retry's output.
    """

    template_fields = ("group", "decided", "diagnosed", "dry_run")

    def __init__(
        self, *, decided: Any, group: Any = None, diagnosed: Any = None, dry_run: Any = False, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.group = group
        self.decided = decided
        self.diagnosed = diagnosed
        self.dry_run = dry_run

    def execute(self, context) -> dict:
        from airflow_doctor.pipeline import retry_at

        self.group = _group_of(context, self.group)  # labelled: map_index_template
        self.diagnosed = _given_or_pulled(context, self.diagnosed, "diagnose")
        at = None if _truthy(self.dry_run) else retry_at(self.group, self.decided)
        how, left = backoff_plan(at, datetime.now(UTC))
        if how == "sleep":
            self.log.info("Backing off %.1f s more before clearing (slept in the task)", left)
            time.sleep(left)
        elif how == "defer":
            from airflow.providers.standard.triggers.temporal import DateTimeTrigger

            self.log.info("Backing off until %s before clearing (deferred to the triggerer)", at.isoformat())
            self.defer(trigger=DateTimeTrigger(moment=at), method_name="execute_complete")
        return self._clear_when_failed(context)

    def execute_complete(self, context, event: Any = None) -> dict:
        """Resumed after the backoff: clear once every member's try shows as failed."""
        self.group = _group_of(context, self.group)
        self.diagnosed = _given_or_pulled(context, self.diagnosed, "diagnose")
        return self._clear_when_failed(context)

    def execute_failed(self, context, event: Any = None) -> dict:
        """Resumed when the members' tries show as failed (or the wait's deadline passed): clear."""
        self.group = _group_of(context, self.group)
        self.diagnosed = _given_or_pulled(context, self.diagnosed, "diagnose")
        if event and event.get("waiting"):
            self.log.warning(
                "%d task instance(s) still not failed; the clear reports them", len(event["waiting"])
            )
        return self._clear(context)

    def _clear_when_failed(self, context) -> dict:
        """Clear now, or first wait in the triggerer for members whose try is not recorded as failed."""
        if not _truthy(self.dry_run):
            from airflow_doctor.pipeline import members_not_failed_yet
            from airflow_doctor.settings import settings as load_settings
            from airflow_doctor.triggers.doctor import FailedStateTrigger

            waiting = members_not_failed_yet(self.group, self.decided)
            if waiting:
                limit = load_settings().failed_state_timeout_seconds
                self.log.info("%d try(s) not yet recorded as failed: waiting in the triggerer", len(waiting))
                self.defer(
                    trigger=FailedStateTrigger(
                        [r.model_dump(mode="json") for r in waiting], time.time() + limit
                    ),
                    method_name="execute_failed",
                    timeout=timedelta(seconds=limit + 300),
                )
        return self._clear(context)

    def _clear(self, context) -> dict:
        from airflow_doctor.pipeline import clear_and_retry

        return clear_and_retry(
            self.group, self.decided, self.diagnosed, context["run_id"], _truthy(self.dry_run)
        )


def backoff_plan(at: datetime | None, now: datetime, sleep_max: float | None = None) -> tuple[str, float]:
    """How clear_and_retry waits for a backoff that ends at `at` (None: no backoff), seen at `now`.

    Returns:
        ("clear", 0.0) when nothing is left to wait; ("sleep", seconds left) when at most
        `sleep_max` seconds (default `[doctor] backoff_sleep_max_seconds`) are left; else ("defer", seconds
        left), to wait in the triggerer.
    """
    limit = read_option("backoff_sleep_max_seconds") if sleep_max is None else sleep_max
    left = (at - now).total_seconds() if at is not None else 0.0
    if left <= 0:
        return "clear", 0.0
    return ("sleep" if left <= limit else "defer"), left


def _truthy(value: Any) -> bool:
    """A templated bool arrives as a bool, or as its string when rendered from a template."""
    return value is True or str(value).strip().lower() in {"true", "1", "yes"}


class FetchLogsOperator(BaseOperator):
    """The fetch_logs stage (capture.report_failures, then pipeline.fetch_reported).

    Run with max_active_tis_per_dag=1: one claim at a time, so a storm is claimed whole; Airflow 3.3
    counts a deferred task instance against that limit, so doctor runs created during the wait
    queue (holding no slot) and claim the stragglers.

    Returns (XCom): [Group] (pipeline.fetch_reported); key "remarks": the lines summarize_run adds
    to the run's note (a manual trigger re-diagnosed or refused and why, failures another doctor run
    took, Params not used). Raises ValueError for malformed or half-filled manual Params when no
    asset event names a failure (nothing is claimed; the note says why); with events, the events'
    failures are handled and the run's note says why the Params were not used.
    """

    def execute(self, context) -> list:
        from airflow_doctor.capture.failures import report_failures
        from airflow_doctor.settings import settings as load_settings
        from airflow_doctor.triggers.doctor import StormSettledTrigger

        events = [e for evs in (context.get("triggering_asset_events") or {}).values() for e in evs]
        try:
            reported = report_failures(events, context.get("params"))
        except ValueError as exc:
            # A manual trigger alone with a malformed or half-filled form: the run fails with the
            # message, and its note (summarize_run) says it too.
            self._remark(context, [f"The manual trigger's params were not used: {exc}"])
            raise
        if reported.get("params_error"):
            reported["remarks"] = [
                f"The manual trigger's params were not used ({reported['params_error']}); this run "
                "handles the failures its asset events reported",
                *reported.get("remarks", []),
            ]
        if not reported["storm"]:
            return self._claim(context, reported)
        settings = load_settings()
        self.log.info("%d failures waiting: deferring until the storm settles", reported["unclaimed"])
        self.defer(
            trigger=StormSettledTrigger(
                reported["unclaimed"],
                time.time(),
                settings.storm_quiet_seconds,
                settings.storm_max_wait_seconds,
            ),
            method_name="execute_complete",
            kwargs={"reported": reported},
            timeout=timedelta(seconds=settings.storm_max_wait_seconds + 300),
        )
        return []  # not reached: defer raises

    def execute_complete(self, context, event: dict | None = None, reported: dict | None = None) -> list:
        """Resumed by the trigger: claim what waits (also after the trigger's error: the claim degrades)."""
        if event and "error" in event:
            self.log.warning("Storm wait ended early: %s", event["error"])
        elif event:
            self.log.info(
                "Storm settled: %s failures after %s s", event.get("unclaimed"), event.get("waited_seconds")
            )
        return self._claim(context, reported or {})

    def _claim(self, context, reported: dict) -> list:
        """pipeline.fetch_reported, and its remarks for the run's note (XCom "remarks")."""
        from airflow_doctor.pipeline import fetch_reported

        remarks: list[str] = []
        try:
            return fetch_reported(reported, context["run_id"], remarks=remarks)
        finally:
            self._remark(context, remarks)

    @staticmethod
    def _remark(context, remarks: list[str]) -> None:
        """Push the lines summarize_run adds to this run's note (XCom "remarks"). Never raises."""
        ti = context.get("ti")
        if ti is None or not remarks:
            return
        try:
            ti.xcom_push(key="remarks", value=remarks)
        except Exception as exc:  # noqa: BLE001 - the task's log still says it
            logging.getLogger(__name__).warning("Could not keep the run's remarks: %s", exc)


class VerifyRetryOperator(BaseOperator):
    """Wait for the retried tries of a group's cleared members to end and record their outcomes.

    Args (templated): group (Group), retried (clear_and_retry's output), approved
    (act_on_approval's output); each read from XCom when not given (`group_xcom`, `stage_xcom`).
    Returns (XCom): {member_key: check_retry's result} of the cleared members. Skips when nothing
    was cleared.
    Raises:
        RuntimeError: the trigger could not reach the API or the knowledge base.
    """

    template_fields = ("group", "retried", "approved")

    def __init__(self, *, group: Any = None, retried: Any = None, approved: Any = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.group = group
        self.retried = retried
        self.approved = approved

    def execute(self, context) -> list:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_doctor.pipeline import cleared_members
        from airflow_doctor.remediation.groups import check_group
        from airflow_doctor.triggers.doctor import RetryOutcomeTrigger

        self.group = _group_of(context, self.group)
        retried = _given_or_pulled(context, self.retried, "clear_and_retry")
        approved = _given_or_pulled(context, self.approved, "act_on_approval")
        clears = cleared_members(retried, approved, self.group)
        if not any(c.get("cleared") for c in clears.values()):
            raise AirflowSkipException("nothing was cleared")
        group = self.group.model_dump(mode="json")
        result = check_group(group, clears)
        if result["done"]:
            return result["verifications"]
        self.defer(
            trigger=RetryOutcomeTrigger(group, clears, read_option("verify_poke_seconds")),
            method_name="execute_complete",
            timeout=timedelta(hours=6),
        )
        return []  # not reached: defer raises

    def execute_complete(self, context, event: dict | None = None) -> list:
        """Resumed by the trigger: the verifications, or the trigger's error."""
        self.group = _group_of(context, self.group)
        if not event or "error" in event:
            raise RuntimeError((event or {}).get("error") or "the trigger fired without an event")
        return event["verifications"]

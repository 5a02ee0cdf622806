"""The doctor's DAGs, built by factories that a deployment's one-line DAG files call.

    # dags/doctor.py                          # dags/doctor_sweeper.py
    from airflow_doctor.dags import doctor_dag     from airflow_doctor.dags import doctor_sweeper_dag
    dag = doctor_dag()                        dag = doctor_sweeper_dag()

`doctor_dag()` builds the `doctor` DAG (scheduled by the asset `doctor://task-failures`, triggerable
by hand with a form); `doctor_sweeper_dag()` builds `doctor_sweeper` (the safety net for failures no
listener reported, and learning from what people did). Their `doc_md`, owner and tags come from
here; every task body is one call into the package. The DAG ids are fixed (`doctor`,
`doctor_sweeper`; `settings.DOCTOR_DAG_IDS`): the doctor never diagnoses its own DAGs. Airflow's DAG
processor records the calling DAG file as each DAG's file location.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Asset, Param, dag, get_current_context, serde, task, task_group
from airflow.sdk.exceptions import AirflowSkipException

from airflow_doctor import pipeline
from airflow_doctor.models import Diagnosed, Embedding, Group, GroupDecision, Memory, PerMember
from airflow_doctor.operators.doctor import (
    GROUP_ID,
    ClearAndRetryOperator,
    DiagnoseOperator,
    FetchLogsOperator,
    GateOperator,
    RecordCaseOperator,
    VerifyRetryOperator,
    group_xcom,
    stage_xcom,
)
from airflow_doctor.remediation import actions
from airflow_doctor.settings import FAILURE_ASSET_NAME, FAILURE_ASSET_URI, LLM_POOL, read_option

# The models the tasks pass each other through XCom may be deserialised in the processes that parse
# this DAG (Airflow's [core] allowed_deserialization_classes admits only airflow.* by default).
for _model in (Group, Embedding, Memory, Diagnosed, GroupDecision):
    serde.allow_class(_model)

DOCTOR_DOC = """
### doctor

Self-healing for failed task instances. Scheduled by asset events on `doctor://task-failures`
(posted by the doctor's listener and sweeper when a task instance fails for good) and triggerable
by hand: fill in the form to diagnose one failed task instance (DAG id and task id alone: its
latest failed try), or leave it empty to handle what waits in the inbox.

Every stage is a task. `fetch_logs` claims every unhandled failure (each exactly once; a storm is
waited out in the triggerer and claimed whole), reads each failed try's log and groups the failures
by fingerprint (a storm of one cause is one group). Each group becomes one mapped instance of
`handle_failures`, labelled `dag_id.task_id[map_index]` (plus "+N more" for a group):
embed_failure → retrieve_similar → diagnose (the only task in the `doctor_llm` pool) →
gate_on_confidence, a branch to
**clear_and_retry** (a backoff waits in the triggerer; a remainder of up to 3 s in the task)
**or** prepare_approval → request_approval (Required Actions) → act_on_approval **or** escalate →
notify_humans; then record_case → verify_retry → report_retry (only when something was cleared:
otherwise record_case skips them). A branch not taken is skipped before it starts a process; a
stage that could not do its job is red and the stages after it escalate. An edge is drawn only
where the flow goes: a stage reads what earlier stages produced from XCom. `summarize_run` writes
this run's note: what it handled, why a failure named by hand was not diagnosed, which failures
another doctor run took. A dry run stops at the gate (nothing is sent, cleared or recorded) and
its note says what the doctor would have done, why, and who would have been told. The logic lives
in the `airflow_doctor` package (`airflow_doctor.pipeline`).
"""

SWEEPER_DOC = """
### doctor_sweeper

The safety net of the doctor. Every few minutes it lists task instances that failed recently
through the REST API and reports those no listener reported: tasks killed by SIGKILL or the OOM
killer, heartbeat timeouts, tasks marked failed by hand. It writes them to the doctor's inbox and
posts the same asset event the listener posts, so the `doctor` DAG handles them; a failure already
reported is left alone (one failure is handled once, whatever its sources).

It also learns from people (`learn_from_people`, independent of the sweep): for each failure the
doctor escalated in the last 7 days, it reads the task instance and records what a person did:
cleared it and the retry succeeded (a verified transient case), cleared it and it failed again, or
left it failed for 24 hours (a person's "permanent"). The gate reads these as memory.

And it learns from Airflow's own retries (`learn_from_airflow`): for each try that went to
`up_for_retry` (the listener notes it), it reads what the next try did: succeeded on the same DAG
version (a verified transient failure), succeeded on a newer DAG version or after a person changed
something (fixed, not transient), or failed again the same way (a retry that did not help). Until a
history import has finished, each sweep first imports a slice of the last 30 days' retried tries
(`python -m airflow_doctor history` imports them all at once).

Interval: `[doctor] sweeper_interval_minutes` (default 3); look-back: `[doctor]
sweeper_lookback_minutes` (default 60).
"""

LABEL = "{{ failure_label }}"


def _label(group: Group) -> dict:
    """Name this mapped task instance after the failures it handles (shown in the UI); return the context."""
    ctx = get_current_context()
    ctx["failure_label"] = group.label
    return ctx


def _pull(stage: str, key: str = "return_value"):
    """operators.doctor.stage_xcom for the running task instance (see there: why the stages pull)."""
    return stage_xcom(get_current_context()["ti"], stage, key)


def _group() -> Group:
    """operators.doctor.group_xcom for the running task instance: this mapped instance's Group."""
    return group_xcom(get_current_context()["ti"])


def _labelled() -> tuple[Group, dict]:
    """(_group(), the context with this instance's label set: _label)."""
    group = _group()
    return group, _label(group)


def doctor_dag():
    """The `doctor` DAG (see DOCTOR_DOC), with its form for manual triggers.

    Parse-time settings (how long an approval waits) are read when the DAG file is parsed;
    Variables are read at run time, not at parse time.

    Returns:
        airflow.sdk.DAG with dag_id "doctor".
    """
    return _doctor()


def _id_param(title: str, description: str) -> Param:
    """A trigger-form field naming the failed task instance: a string, or empty (null). Its limit
    mirrors FailureRef's (airflow_doctor/models.py: at most 250 characters)."""
    return Param(None, type=["null", "string"], maxLength=250, title=title, description=description)


#: The trigger form. Every field may stay empty (JSON schema type null; Airflow's form requires a
#: field whose type excludes null): an empty form handles what waits in the inbox. The limits mirror
#: FailureRef's (airflow_doctor/models.py), which checks them again; capture.ref_from_params says
#: which field a half-filled form lacks.
DOCTOR_PARAMS = {
    "dag_id": _id_param(
        "DAG id",
        "DAG of the failed task instance. Leave every id empty to handle only what waits in the "
        "doctor's inbox.",
    ),
    "run_id": _id_param(
        "Run id",
        "DAG run of the failed task instance: copy it from the run's details in the Grid view (Run "
        "ID), or leave it empty to take the latest failed try of the DAG id and task id.",
    ),
    "task_id": _id_param(
        "Task id", "The failed task (with its task group prefix, as the Grid view shows it)."
    ),
    "map_index": Param(
        None,
        type=["null", "integer"],
        minimum=-1,
        maximum=2**31 - 1,
        title="Map index",
        description="Empty or -1 if not mapped.",
    ),
    "try_number": Param(
        None,
        type=["null", "integer"],
        minimum=0,
        maximum=2**31 - 1,
        title="Try number",
        description="The failed try; empty or 0 means the task instance's latest try.",
    ),
    "dry_run": Param(
        False,
        type="boolean",
        title="Dry run",
        description="Diagnose and decide only: send no message, clear nothing, write no note on the "
        "failed task instance, record nothing. This run's note says what the doctor would have done, "
        "why, and who would have been told.",
    ),
}


@dag(
    dag_id="doctor",
    schedule=Asset(name=FAILURE_ASSET_NAME, uri=FAILURE_ASSET_URI),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=DOCTOR_DOC,
    # Ahead of queued pipeline tasks: remediation must not wait behind the backlog it is healing.
    default_args={"owner": "airflow-doctor", "retries": 0, "priority_weight": 100, "weight_rule": "absolute"},
    tags=["doctor", "doctor:off"],
    params=DOCTOR_PARAMS,
)
def _doctor():
    approval_timeout = timedelta(minutes=read_option("approval_timeout_minutes"))
    # One claim at a time: a storm is claimed whole (its wait deferred to the triggerer), and doctor
    # runs created meanwhile claim the stragglers.
    fetched = FetchLogsOperator(task_id="fetch_logs", max_active_tis_per_dag=1)

    # Each stage takes its direct upstream's output as an argument and reads the rest with _pull:
    # the Graph view then draws only where the flow goes (16 edges).
    @task_group(group_id=GROUP_ID)
    def handle_failures(group: Group):
        @task(map_index_template=LABEL)
        def embed_failure(group: Group) -> Embedding:
            _label(group)
            get_current_context()["ti"].xcom_push(key="group", value=group)  # read by the stages after
            return pipeline.stage_result(pipeline.embed_failure(group))

        @task(map_index_template=LABEL, trigger_rule="all_done")
        def retrieve_similar(embedding: Embedding | None) -> Memory:
            group, _ = _labelled()
            return pipeline.stage_result(pipeline.retrieve_similar(group, embedding))

        @task(map_index_template=LABEL, trigger_rule="none_skipped")
        def prepare_approval(decided: GroupDecision) -> dict:
            group, ctx = _labelled()
            return pipeline.prepare_approval(
                group, _pull("retrieve_similar"), _pull("diagnose"), decided, ctx["run_id"]
            )

        @task(map_index_template=LABEL, trigger_rule="none_skipped")
        def act_on_approval(answer: dict | None) -> dict[str, list]:
            group, ctx = _labelled()
            decided = _pull("gate_on_confidence", key="decided")
            return pipeline.act_on_approval(group, decided, _pull("diagnose"), answer, ctx["run_id"])

        # A PerMember is one XCom (a dict return would otherwise be pushed key by key).
        @task(map_index_template=LABEL, trigger_rule="none_skipped", multiple_outputs=False)
        def escalate(decided: GroupDecision) -> PerMember:
            group, ctx = _labelled()
            return pipeline.escalate(group, decided, _pull("diagnose"), dry_run=ctx["params"]["dry_run"])

        @task(map_index_template=LABEL, trigger_rule="none_skipped")
        def notify_humans(escalations: PerMember | None) -> list:
            group, ctx = _labelled()
            decided = _pull("gate_on_confidence", key="decided")
            memory, diagnosed = _pull("retrieve_similar"), _pull("diagnose")
            return pipeline.notify_humans(group, memory, diagnosed, decided, escalations, ctx["run_id"])

        # none_skipped: a verify_retry the branch skipped skips this too, with no process.
        @task(map_index_template=LABEL, trigger_rule="none_skipped")
        def report_retry(verifications: PerMember | None) -> list:
            group, ctx = _labelled()
            if verifications is None:
                raise AirflowSkipException("no retried try to report")
            retried, approved = _pull("clear_and_retry"), _pull("act_on_approval")
            return pipeline.notify_humans(
                group,
                _pull("retrieve_similar"),
                _pull("diagnose"),
                _pull("gate_on_confidence", key="decided"),
                None,
                ctx["run_id"],
                clears=pipeline.cleared_members(retried, approved, group),
                verifications=verifications,
            )

        memory = retrieve_similar(embed_failure(group))
        diagnosed = DiagnoseOperator(
            task_id="diagnose",
            memory=memory,
            pool=LLM_POOL,
            map_index_template=LABEL,
            trigger_rule="all_done",
        ).output
        gate = GateOperator(
            task_id="gate_on_confidence",
            diagnosed=diagnosed,
            map_index_template=LABEL,
            trigger_rule="all_done",
        )
        decided = gate.output["decided"]
        retried = ClearAndRetryOperator(
            task_id="clear_and_retry",
            decided=decided,
            dry_run="{{ params.dry_run }}",
            map_index_template=LABEL,
            trigger_rule="none_skipped",
        )
        ask = prepare_approval(decided)
        answer = HITLOperator(
            task_id="request_approval",
            subject=ask["subject"],
            body=ask["body"],
            options=["Approve", "Reject"],
            defaults=["Reject"],  # no answer in time is a "Reject" by nobody: the failure stays failed
            response_timeout=approval_timeout,
            map_index_template="{{ task.subject }}",  # "Retry dag.task (try N)?": a classic operator
        )
        approved = act_on_approval(answer.output)
        notified = notify_humans(escalate(decided))
        # A branch: verify_retry (and report_retry after it) run only for a group with a clear to
        # verify; an escalated or rejected group skips them without starting their processes.
        cases = RecordCaseOperator(task_id="record_case", map_index_template=LABEL, trigger_rule="all_done")
        [retried, approved, notified] >> cases
        verify = VerifyRetryOperator(
            task_id="verify_retry", map_index_template=LABEL, trigger_rule="all_done"
        )
        cases >> verify
        report_retry(verify.output)

    @task(trigger_rule="all_done")
    def summarize_run() -> str:
        ctx = get_current_context()
        return actions.summarize_run(
            ctx["run_id"],
            dry_run=ctx["params"]["dry_run"],
            remarks=ctx["ti"].xcom_pull(task_ids="fetch_logs", key="remarks", map_indexes=-1),
            dry_run_verdicts=_pulled_all(ctx["ti"], f"{GROUP_ID}.gate_on_confidence", "dry_run_verdict"),
        )

    handle_failures.expand(group=fetched.output) >> summarize_run()


def _pulled_all(ti, task_id: str, key: str) -> list:
    """Every map index's XCom `key` of the mapped task `task_id` in this run (None left out)."""
    values = ti.xcom_pull(task_ids=[task_id], key=key)
    return [v for v in (values or []) if v is not None]


def doctor_sweeper_dag():
    """The `doctor_sweeper` DAG (see SWEEPER_DOC), on its schedule read when the DAG file is parsed.

    Returns:
        airflow.sdk.DAG with dag_id "doctor_sweeper".
    """
    interval = timedelta(minutes=read_option("sweeper_interval_minutes"))
    return dag(schedule=interval, **_SWEEPER_DAG_ARGS)(_doctor_sweeper)()


_SWEEPER_DAG_ARGS = dict(
    dag_id="doctor_sweeper",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=SWEEPER_DOC,
    default_args={"owner": "airflow-doctor", "retries": 1, "retry_delay": timedelta(seconds=30)},
    tags=["doctor", "doctor:off"],
)


def _doctor_sweeper():
    @task
    def sweep_failed_task_instances() -> dict:
        from airflow_doctor.capture.failures import sweep

        return sweep()

    @task
    def learn_from_people() -> dict:
        from airflow_doctor.knowledge import learning

        return learning.learn_from_people()

    @task
    def learn_from_airflow() -> dict:
        from airflow_doctor.knowledge import airflow_retries

        return airflow_retries.learn_during_sweep()

    sweep_failed_task_instances()
    learn_from_people()
    learn_from_airflow()

"""What the Doctor tab and dashboard read from Airflow's own metadata database (the API server may
read it; the plugin runs there): the doctor run's Required Actions (HITL) requests and answers, its
dry_run Param, what the doctor's gate decided while an approval waits (its XComs), and whether a
task instance is still failed.

Why from Airflow: the knowledge base records a case only after the approval was answered (the
doctor DAG's record_case runs after act_on_approval), and it records who approved only in the task
instance's note. Airflow's `hitl_detail` rows (airflow/models/hitl.py) hold the request's time, the
answer, its time and the person who gave it.

Every function here never raises: a metadata database that cannot be read gives the empty answer
(logged), and the views say less.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

#: The doctor DAG's mapped task group and the tasks read here (airflow_doctor/dags.py).
GROUP_ID = "handle_failures"
APPROVAL_TASK = f"{GROUP_ID}.request_approval"
DIAGNOSE_TASK = f"{GROUP_ID}.diagnose"
GATE_TASK = f"{GROUP_ID}.gate_on_confidence"
FETCH_TASK = "fetch_logs"


def plain(value: Any) -> Any:
    """An XCom value as plain JSON data: the Task SDK's serde envelopes ({"__classname__", "__version__",
    "__data__"}) and Airflow's serialized form ({"__type", "__var"}) unwrapped, recursively."""
    if isinstance(value, dict):
        if "__data__" in value and "__classname__" in value:
            return plain(value["__data__"])
        if "__var" in value and "__type" in value:
            return plain(value["__var"])
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _xcom(session, dag_id: str, run_id: str, task_id: str, map_index: int, key: str = "return_value"):
    import json

    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    raw = session.scalar(
        select(XComModel.value).where(
            XComModel.dag_id == dag_id,
            XComModel.run_id == run_id,
            XComModel.task_id == task_id,
            XComModel.map_index == map_index,
            XComModel.key == key,
        )
    )
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    return plain(raw)


def _member_index(group: dict | None, ti: dict) -> int | None:
    for i, m in enumerate((group or {}).get("members") or []):
        if all(m.get(k) == ti.get(k) for k in ("dag_id", "run_id", "task_id", "map_index", "try_number")):
            return i
    return None


def doctor_run_facts(doctor_dag_id: str, doctor_run_id: str | None, ti: dict) -> dict:
    """What Airflow holds about the doctor run that handled one failed try.

    Args:
        doctor_dag_id: the doctor DAG's id ("doctor").
        doctor_run_id: its run (the case's doctor_run_id, or the inbox row's claimed_by); None: {}.
        ti: the failed try: {"dag_id", "run_id", "task_id", "map_index", "try_number"}.
    Returns:
        {"dry_run": bool (the run's dry_run Param as triggered), "approvals": [{"subject",
        "created_at", "responded_at" | None, "responded_by" (the person's name) | None, "chosen"
        (first chosen option) | None, "map_index", "state"}], "pending": {"diagnosis": dict | None,
        "decision": dict | None} | None (the gate's verdict on this try while its approval waits)};
        {} when the metadata database cannot be read.
    """
    if not doctor_run_id:
        return {}
    try:
        from airflow.models.dagrun import DagRun
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            conf = session.scalar(
                select(DagRun.conf).where(DagRun.dag_id == doctor_dag_id, DagRun.run_id == doctor_run_id)
            )
            rows = session.execute(
                select(HITLDetail, TaskInstance.map_index, TaskInstance.state)
                .join(TaskInstance, TaskInstance.id == HITLDetail.ti_id)
                .where(
                    TaskInstance.dag_id == doctor_dag_id,
                    TaskInstance.run_id == doctor_run_id,
                    TaskInstance.task_id == APPROVAL_TASK,
                )
                .order_by(TaskInstance.map_index)
            ).all()
            approvals = []
            for detail, map_index, state in rows:
                by = detail.responded_by or {}
                approvals.append(
                    {
                        "subject": detail.subject,
                        "created_at": detail.created_at,
                        "responded_at": detail.responded_at,
                        "responded_by": (by.get("name") or by.get("id")) if isinstance(by, dict) else by,
                        "chosen": (detail.chosen_options or [None])[0],
                        "map_index": map_index,
                        "state": getattr(state, "value", state),
                    }
                )
            dry_run = bool((conf or {}).get("dry_run"))
            waiting = [a["map_index"] for a in approvals if a["responded_at"] is None]
            # A dry run records nothing: its verdicts are only in the run's XComs.
            pending = _pending(session, doctor_dag_id, doctor_run_id, waiting, ti, every_group=dry_run)
        return {"dry_run": dry_run, "approvals": approvals, "pending": pending}
    except Exception as exc:  # noqa: BLE001 - the tab says less, never fails
        log.warning("Could not read doctor run %s from Airflow's metadata: %s", doctor_run_id, exc)
        return {}


def _pending(
    session, dag_id: str, run_id: str, map_indexes: list[int], ti: dict, every_group: bool = False
) -> dict | None:
    """The diagnosis and the gate's decision for `ti` from the doctor run's XComs: of the mapped
    group whose members include it, among `map_indexes` (or every group)."""
    if not map_indexes and not every_group:
        return None
    groups = _xcom(session, dag_id, run_id, FETCH_TASK, -1) or []
    if every_group and isinstance(groups, list):
        map_indexes = list(range(len(groups)))
    for m in map_indexes:
        group = groups[m] if isinstance(groups, list) and 0 <= m < len(groups) else None
        i = _member_index(group, ti)
        if i is None:
            continue
        diagnosed = _xcom(session, dag_id, run_id, DIAGNOSE_TASK, m) or {}
        decided = _xcom(session, dag_id, run_id, GATE_TASK, m, key="decided") or {}
        decisions = decided.get("decisions") or []
        diagnosis = diagnosed.get("diagnosis")
        if diagnosis:
            diagnosis = {
                **diagnosis,
                "diagnoser": diagnosed.get("diagnoser") or diagnosis.get("diagnoser"),
                "model": diagnosed.get("model"),
            }
        return {"diagnosis": diagnosis, "decision": decisions[i] if i < len(decisions) else None}
    return None


def still_failed(keys: list[tuple]) -> set[tuple] | None:
    """Which of the failed tries Airflow still shows failed at that try.

    Args:
        keys: (dag_id, run_id, task_id, map_index, try_number) tuples.
    Returns:
        the subset still `failed` with that try_number; None when the metadata database cannot be read.
    """
    if not keys:
        return set()
    try:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select, tuple_

        wanted = {k[:4]: k[4] for k in keys}
        with create_session() as session:
            rows = session.execute(
                select(
                    TaskInstance.dag_id,
                    TaskInstance.run_id,
                    TaskInstance.task_id,
                    TaskInstance.map_index,
                    TaskInstance.try_number,
                    TaskInstance.state,
                ).where(
                    tuple_(
                        TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index
                    ).in_(list(wanted))
                )
            ).all()
        return {
            (d, r, t, m, n)
            for d, r, t, m, n, state in rows
            if state == "failed" and wanted.get((d, r, t, m)) == n
        }
    except Exception as exc:  # noqa: BLE001 - every escalation is listed then
        log.warning("Could not read task instance states from Airflow's metadata: %s", exc)
        return None


def task_operator(dag_id: str, run_id: str, task_id: str, map_index: int) -> str | None:
    """The task instance's operator as Airflow recorded it (`task_instance.operator`: the class name,
    e.g. "_PythonDecoratedOperator" for `@task`), or None when unknown or unreadable. The log's
    excerpt may name a hook the task called instead; Airflow's record is the operator."""
    try:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            return session.scalar(
                select(TaskInstance.operator).where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.run_id == run_id,
                    TaskInstance.task_id == task_id,
                    TaskInstance.map_index == map_index,
                )
            )
    except Exception as exc:  # noqa: BLE001 - the case's own record is shown then
        log.warning("Could not read the operator of %s.%s from Airflow's metadata: %s", dag_id, task_id, exc)
        return None

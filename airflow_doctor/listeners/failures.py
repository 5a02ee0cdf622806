"""The listener: when a task instance fails for good, tell the doctor.

Runs inside the failing task's process (a RuntimeTaskInstance; Airflow records the failure only
after the process exits, so the listener's time delays it: 0.1-0.4 s, bench/listener) or in the
API server (an ORM TaskInstance, when a person marks a task failed). Writes the FailureRef to the
doctor's inbox and posts an asset event for `doctor://task-failures` (the doctor's httpx client,
airflow_doctor/hooks/airflow_api.py: about 0.1 s to import where the official client took seconds,
bench/startup). Costs a healthy task nothing: only
`on_task_instance_failed` is implemented, and everything it imports is imported on the failure
path. Never raises.
"""

from __future__ import annotations

import logging
import threading

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)


@hookimpl
def on_task_instance_failed(previous_state, task_instance, error):
    try:
        from airflow_doctor.capture.failures import failed_for_good, ref_from_task_instance, report_failure
        from airflow_doctor.settings import DOCTOR_DAG_IDS, TAG_OFF

        if task_instance.dag_id in DOCTOR_DAG_IDS or not failed_for_good(task_instance):
            return
        dag = getattr(getattr(task_instance, "task", None), "dag", None)
        if TAG_OFF in (getattr(dag, "tags", None) or ()):
            return
        ref = ref_from_task_instance(task_instance)
        if _in_api_server(task_instance):
            # In the API server the state change is a web request: report it off the request's
            # thread so the request (and a call back into this same server) cannot block each other.
            threading.Thread(target=report_failure, args=(ref,), name="doctor-report", daemon=True).start()
        else:
            report_failure(ref)
    except Exception:  # noqa: BLE001 - a listener must never break the task it observes
        log.exception("airflow-doctor listener failed; the sweeper will pick this failure up")


def _in_api_server(task_instance) -> bool:
    """True for the ORM TaskInstance (API server), False for the worker's RuntimeTaskInstance."""
    return type(task_instance).__module__.startswith("airflow.models")

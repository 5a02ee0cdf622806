"""The listener: when a task instance fails for good, tell the doctor; when Airflow retries it, note it.

Runs inside the failing task's process (a RuntimeTaskInstance; Airflow records the failure only
after the process exits, so the listener's time delays it: 0.1-0.4 s, bench/listener) or in the
API server (an ORM TaskInstance, when a person marks a task failed).

- A final failure (state `failed`): writes the FailureRef to the doctor's inbox and posts an asset
  event for `doctor://task-failures` (the doctor's httpx client, airflow_doctor/hooks/airflow_api.py:
  about 0.1 s to import where the official client took seconds, bench/startup).
- A try going to `up_for_retry` (Airflow calls `on_task_instance_failed` for it too): writes one row
  to `doctor.retried_tries` and nothing else (no REST call, no LLM; a connect timeout of
  `RETRIED_TRY_CONNECT_TIMEOUT` seconds). The doctor_sweeper later reads what the next try did and
  keeps it as memory (airflow_doctor/knowledge/airflow_retries.py).

Costs a healthy task nothing: only `on_task_instance_failed` is implemented, and everything it
imports is imported on the failure path. Never raises.
"""

from __future__ import annotations

import logging
import threading

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

#: Seconds to wait for the knowledge base when noting a retried try (libpq's connect_timeout; it
#: treats values below 2 as 2). The note is memory, not a failure to handle: a slow database must
#: not hold up the retry, and a try not noted is only a lesson not learnt.
RETRIED_TRY_CONNECT_TIMEOUT = 2


@hookimpl
def on_task_instance_failed(previous_state, task_instance, error):
    try:
        from airflow_doctor.capture.failures import failed_for_good, ref_from_task_instance, report_failure
        from airflow_doctor.settings import DOCTOR_DAG_IDS, TAG_OFF

        if task_instance.dag_id in DOCTOR_DAG_IDS:
            return
        retrying = _up_for_retry(task_instance)
        if not retrying and not failed_for_good(task_instance):
            return
        dag = getattr(getattr(task_instance, "task", None), "dag", None)
        if TAG_OFF in (getattr(dag, "tags", None) or ()):
            return
        ref = ref_from_task_instance(task_instance)
        if retrying:
            _note_retried_try(ref)
        elif _in_api_server(task_instance):
            # In the API server the state change is a web request: report it off the request's
            # thread so the request (and a call back into this same server) cannot block each other.
            threading.Thread(target=report_failure, args=(ref,), name="doctor-report", daemon=True).start()
        else:
            report_failure(ref)
    except Exception:  # noqa: BLE001 - a listener must never break the task it observes
        log.exception("airflow-doctor listener failed; the sweeper will pick this failure up")


def _up_for_retry(task_instance) -> bool:
    """True when this try goes to `up_for_retry`: Airflow will run the task instance again."""
    state = getattr(task_instance, "state", None)
    return str(getattr(state, "value", state)) == "up_for_retry"


def _note_retried_try(ref) -> None:
    """One row in `doctor.retried_tries` (source 'listener'); logged, never raised, when it fails."""
    try:
        from airflow_doctor.knowledge.store import KnowledgeBase

        KnowledgeBase(connect_timeout=RETRIED_TRY_CONNECT_TIMEOUT).record_retried_tries([ref], "listener")
    except Exception as exc:  # noqa: BLE001 - memory, not a failure: never break the task
        log.warning(
            "airflow-doctor could not note the retry of %s try %s: %s: %s",
            ref.label,
            ref.try_number,
            type(exc).__name__,
            exc,
        )


def _in_api_server(task_instance) -> bool:
    """True for the ORM TaskInstance (API server), False for the worker's RuntimeTaskInstance."""
    return type(task_instance).__module__.startswith("airflow.models")

"""People's answers from the Doctor tab (issue 14): they teach the doctor, and act as the person.

A person looking at a failure in the Airflow UI answers on the Doctor tab of its task instance
(plugins/doctor_ui/). Each answer is stored in `doctor.answers` (include/sql/005_answers.sql) with
actor 'human', the person's Airflow user name and the time, and changes what the gate decides for the
next failure with the same fingerprint at once, through `KnowledgeBase.find_by_fingerprint`
(include/sql/queries/find_by_fingerprint.sql reads the active answers):

- "transient": the person clears the failed try through Airflow's public REST API *with their own
  token*, so Airflow checks their permission as for the Clear button; the case then reads as a
  person's verified transient (`Neighbour.retry_verified` through outcome 'succeeded'), unless a
  retry of it is later seen to fail (the sweeper's learn_from_people records that).
- "permanent": no clear; the case reads as a person's "permanent" (`Neighbour.judged_permanent`), the
  gate's veto: every later failure with this fingerprint is escalated, with the reason "a person said
  case N (same fingerprint) is permanent", until the answer is undone.
- "wrong_class": the right error class; it replaces the diagnosed one where memory reports the case.
- "undo": the newest active answer of the case stops counting (kept in the history).

Also starts the doctor by hand for a failure it never saw ("diagnose now"), as the person. Both
actions go through the doctor's one REST client (`AirflowAPI.for_user`, the person's token).
Writes: `doctor.answers`; through the REST API, a clear or a `doctor` DAG run.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)

ANSWERS = ("transient", "permanent", "wrong_class", "undo")
#: An error class as the diagnosis names it (models.Diagnosis: snake_case, at most 80 characters).
ERROR_CLASS_RE = re.compile(r"^[a-z][a-z0-9_]{0,79}$")
#: Seconds to wait for the REST API (a clear or a trigger answers in well under a second locally).
API_TIMEOUT = 15.0
#: The DAG a person starts by "diagnose now" (dags/doctor.py; its Params are the FailureRef fields).
DOCTOR_DAG_ID = "doctor"
#: The note on a `doctor` run a person started from the Doctor tab.
DIAGNOSE_NOW_NOTE = "started from the Doctor tab (diagnose now)"


class AnswerError(ValueError):
    """An answer that cannot be taken: unknown kind, bad class, or a case of another task instance."""


class AirflowRefusedError(RuntimeError):
    """The REST API refused the person's request (status and Airflow's detail), or was unreachable.

    Attributes:
        status: the HTTP status (403 when the person lacks the permission), or 502 when unreachable.
    """

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"Airflow answered HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class TaskInstanceKey:
    """The task instance the tab shows (map_index -1 when not mapped)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1


def normalise_error_class(value: str | None) -> str:
    """The error class as the diagnosis spells it (lower snake_case), validated.

    Raises:
        AnswerError: empty, longer than 80 characters, or not letters, digits and underscores.
    """
    text = "_".join((value or "").strip().lower().replace("-", " ").split())
    if not ERROR_CLASS_RE.match(text):
        raise AnswerError(
            "the right class must be snake_case: a letter, then letters, digits or '_', 80 characters at most"
        )
    return text


def validate(answer: str, error_class: str | None) -> tuple[str, str | None]:
    """Check an answer's kind and class.

    Returns:
        (answer, error_class or None).
    Raises:
        AnswerError: unknown answer, or "wrong_class" without a valid class.
    """
    if answer not in ANSWERS:
        raise AnswerError(f"unknown answer {answer!r}; one of {', '.join(ANSWERS)}")
    return answer, (normalise_error_class(error_class) if answer == "wrong_class" else None)


def _as_person(api_url: str, token: str | None):
    """The one REST client (airflow_doctor/hooks/airflow_api.py) acting with the person's own token."""
    from airflow_doctor.hooks.airflow_api import AirflowAPI

    return AirflowAPI.for_user(api_url, token, timeout=API_TIMEOUT)


def _refused(exc) -> AirflowRefusedError:
    """An AirflowAPIError as the UI reports it: Airflow's status and detail, or 502 when no answer came."""
    if exc.status is None:
        return AirflowRefusedError(502, str(exc)[:300])
    return AirflowRefusedError(exc.status, (exc.detail or str(exc))[:300])


def clear_as_user(api_url: str, token: str | None, ti: TaskInstanceKey) -> int:
    """Clear the task instance's failed try (and its failed downstream tasks) as the person.

    `POST /api/v2/dags/{dag_id}/clearTaskInstances` with dry_run false and only_failed, as the Clear
    button does; Airflow checks the person's permission.

    Args:
        api_url: the API server's base URL (e.g. http://localhost:8080).
        token: the person's JWT (from their request).
        ti: the task instance.
    Returns:
        how many task instances Airflow cleared (0 when the try is no longer failed).
    Raises:
        AirflowRefusedError: Airflow refused (403: no permission) or was unreachable (502).
    """
    from airflow_doctor.hooks.airflow_api import AirflowAPIError

    try:
        return len(
            _as_person(api_url, token).clear_task_instances(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)
        )
    except AirflowAPIError as exc:
        raise _refused(exc) from exc


def trigger_doctor_as_user(api_url: str, token: str | None, ti: TaskInstanceKey, try_number: int) -> str:
    """Start the `doctor` DAG by hand for one failure, as the person ("diagnose now").

    The run's conf carries the doctor's Params (dag_id, run_id, task_id, map_index, try_number),
    as the trigger form would.

    Returns:
        the new DAG run's run_id.
    Raises:
        AirflowRefusedError: Airflow refused (403: the person may not trigger `doctor`) or was
            unreachable (502).
    """
    from airflow_doctor.hooks.airflow_api import AirflowAPIError

    conf = {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "try_number": try_number,
    }
    try:
        run = _as_person(api_url, token).trigger_dag_run(DOCTOR_DAG_ID, conf, note=DIAGNOSE_NOW_NOTE)
    except AirflowAPIError as exc:
        raise _refused(exc) from exc
    return str(run.get("dag_run_id"))


def take_answer(
    store,
    ti: TaskInstanceKey,
    case_id: int,
    answer: str,
    *,
    user_name: str,
    error_class: str | None = None,
    clear=None,
) -> dict:
    """Take a person's answer on one case of the task instance the tab shows.

    Args:
        store: a `UIStore`.
        ti: the task instance of the tab (the permission was checked on its DAG).
        case_id: the case answered; it must be one of this task instance's cases.
        answer: "transient" | "permanent" | "wrong_class" | "undo".
        user_name: the Airflow user answering.
        error_class: the right class, for "wrong_class".
        clear: for "transient", a callable `clear(ti) -> int` clearing the try as the person
            (`clear_as_user` bound to their token); None clears nothing.
    Returns:
        {"answer": str, "row": the stored or undone answer (dict) | None, "cleared": int, "message": str}.
    Raises:
        AnswerError: a bad answer, or a case that is not this task instance's.
        AirflowRefusedError: the person's clear was refused (nothing is stored then).
    """
    answer, error_class = validate(answer, error_class)
    cases = store.task_instance_cases(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)["cases"]
    if case_id not in {c["id"] for c in cases}:
        raise AnswerError(f"case {case_id} is not a case of this task instance")
    if answer == "undo":
        row = store.undo_answer(case_id, user_name=user_name)
        message = (
            f"Undone: {row['answer'].replace('_', ' ')} by {row['user_name']}" if row else "Nothing to undo"
        )
        return {"answer": answer, "row": row, "cleared": 0, "message": message}
    cleared = 0
    if answer == "transient" and clear is not None:
        cleared = clear(ti)
    row = store.record_answer(
        case_id, answer=answer, user_name=user_name, error_class=error_class, cleared=cleared > 0
    )
    message = {
        "transient": (
            f"Recorded as transient; cleared {cleared} task instance(s) for retry"
            if cleared
            else "Recorded as transient; nothing was cleared (the try is no longer failed)"
        ),
        "permanent": "Recorded as permanent: the doctor will not auto-retry this fingerprint until undone",
        "wrong_class": f"Recorded: the right class is {error_class}",
    }[answer]
    log.info("Doctor tab: %s answered %s on case %s (%s)", user_name, answer, case_id, message)
    return {"answer": answer, "row": row, "cleared": cleared, "message": message}

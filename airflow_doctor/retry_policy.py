"""The doctor's memory as an Airflow 3.3 retry policy (`retry_policy=`, AIP-105): docs/retry-policy.md.

Airflow calls a task's `retry_policy.evaluate(exception, try_number, max_tries, context)` in the
failing task's own worker process, before it decides between a retry and a failure. The doctor acts
later, after a task instance failed for good. `DoctorRetryPolicy` brings what the doctor has learnt to
that earlier moment: it fingerprints the exception exactly as the doctor fingerprints the log's primary
error (`fingerprint_of`), asks the knowledge base once (include/sql/queries/policy_evidence.sql) and

- RETRY (with the class's backoff, if any) a fingerprint this deployment has proven transient;
- FAIL at once, skipping the remaining retries, a fingerprint proven permanent;
- DEFAULT (Airflow's own `retries` and `retry_delay`) for anything else, and whenever anything goes
  wrong (`evaluate` never raises and never waits more than its timeouts).

Non-DEFAULT decisions are written to `doctor.policy_decisions` (include/sql/008_policy_decisions.sql).
`StaticDoctorRetryPolicy` does the same from a table exported by `airflow-doctor export-policy`
(`export_module`), for workers that cannot reach the knowledge base.

Imported in every task process of a DAG that uses it: only the standard library and Airflow's
retry-policy module at import time; the excerpt, the fingerprint, psycopg2 and the connection are
imported at the failure, when `evaluate` runs.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.definitions.retry_policy import RetryAction, RetryDecision, RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

log = logging.getLogger(__name__)

#: Seconds libpq waits for the knowledge base's server: 2 is libpq's smallest useful value (its docs
#: for `connect_timeout`: "It is not recommended to use a timeout of less than 2 seconds"), and a task
#: that failed should not wait longer than that for advice.
CONNECT_TIMEOUT_SECONDS = 2
#: Milliseconds Postgres may spend on each statement (`SET LOCAL statement_timeout`): the lookup has the
#: shape of find_by_fingerprint.sql (one fingerprint by index, the latest remediation and answer per
#: case), which bench/retrieval measured at 8.8-13 ms p95 with 100k-1M cases: 500 ms is about 40 times
#: that, and still unnoticeable at a task's failure.
STATEMENT_TIMEOUT_MS = 500
#: Verified outcomes a fingerprint needs before the policy acts on them (successful retries for RETRY,
#: failed retries since the last success for FAIL). One success can be luck (the outage ended while the
#: retry waited) and one failure can be a second outage; two in agreement is the least evidence that is
#: a pattern, and the doctor's own gate already vetoes an auto-retry after a single failed one.
MIN_VERIFIED = 2
#: The longest retry delay the policy asks for, seconds: the doctor's own cap on a backoff
#: (`BACKOFF_CAP_SECONDS` in airflow_doctor/judgement/gate.py; a test keeps the two equal).
BACKOFF_CAP_SECONDS = 300.0
#: The start of every reason the policy gives (Airflow stores it as the try's retry_reason).
REASON_PREFIX = "airflow-doctor"
#: The Airflow 3 task runner's record that carries the exception which failed the task (its event and
#: logger), as the doctor reads it from the task's log (airflow_doctor/logs/excerpt.py).
FAILURE_EVENT = "Task failed with exception"
#: Outcomes of the evidence query that count as "fixed by a change" (007_deployment_record.sql).
FIXED_BY = {"fixed_by_change": "a new DAG version", "fixed_by_person": "a person"}

#: Exception classes whose class alone says the failure is one of the doctor's retry-safe catalogue
#: classes (airflow_doctor/judgement/catalogue.py), exported beside the proven fingerprints
#: (`retry_safe_exceptions`): PostgreSQL's SQLSTATE classes that its docs say to retry (40P01
#: deadlock_detected, 40001 serialization_failure) or that mean a restart or failover in progress
#: (57P01 admin_shutdown, 57P03 cannot_connect_now), as psycopg2 raises them; and a connection the peer
#: reset. Dotted path -> catalogue class.
RETRY_SAFE_EXCEPTIONS: dict[str, str] = {
    "builtins.ConnectionResetError": "connection_reset_by_remote",
    "psycopg2.errors.AdminShutdown": "db_failover",
    "psycopg2.errors.CannotConnectNow": "db_failover",
    "psycopg2.errors.DeadlockDetected": "db_deadlock",
    "psycopg2.errors.SerializationFailure": "db_serialization_failure",
}


# -- the fingerprint of an exception -------------------------------------------------------------


def failure_record(exception: BaseException) -> dict:
    """The Airflow 3 task log record of `exception` failing a task, as the doctor reads it.

    Airflow's task runner logs `log.exception("Task failed with exception")`; its JSON logging turns
    the exception into a list of dicts with structlog's `ExceptionDictTransformer` (without locals or
    rich), and the supervisor stores that list as `error_detail` (airflow/sdk/execution_time/
    supervisor.py). This builds the same record from the exception object.

    Returns:
        {"event", "level", "logger", "error_detail": [{"exc_type", "exc_value", "is_cause", "frames",
        ...}, ...]}, the raised exception first, its causes and contexts after it.
    """
    from structlog.tracebacks import ExceptionDictTransformer

    transform = ExceptionDictTransformer(use_rich=False, show_locals=False)
    detail = transform((type(exception), exception, exception.__traceback__))
    return {"event": FAILURE_EVENT, "level": "error", "logger": "task", "error_detail": detail}


def primary_error(exception: BaseException) -> tuple[str | None, str] | None:
    """The primary error the doctor reads for `exception`: (exception type or None, message).

    The doctor's own excerpt code (`extract_excerpt` in airflow_doctor/logs/excerpt.py) runs on
    `failure_record(exception)`: a wrapper gives way to its chained cause, a cosmos exception to dbt's
    error, the message is redacted and cut to 500 characters, exactly as for the task's log.

    Returns:
        (type, message), or None when the log would decide what the exception alone cannot: the
        primary error is still an explicit wrapper (a failed bash command, a remote job's terminal
        state, a retry loop that gave up) without a chained cause, whose real error the doctor reads
        from the lines the task printed before it. A generic re-raise without a cause (`ValueError:
        load failed`) stays the primary error of an Airflow 3 log, for the doctor as here.
    """
    # _WRAPPER: the excerpt's own test for an explicit wrapper (extract_excerpt's `explicit`).
    from airflow_doctor.logs.excerpt import _WRAPPER, extract_excerpt

    excerpt = extract_excerpt([failure_record(exception)])
    exc_type, message = excerpt.exception_type, excerpt.message
    if excerpt.source not in {"error_detail", "wrapped_output"} or not (exc_type or message):
        return None
    if _WRAPPER.search(message or "") or _WRAPPER.search(exc_type or ""):
        return None
    return exc_type, message


def fingerprint_of(exception: BaseException) -> str | None:
    """The fingerprint the doctor computes from the task's log for `exception` (16 hex digits), or
    None (`primary_error` is None). `fingerprint` in airflow_doctor/logs/fingerprint.py."""
    from airflow_doctor.logs.fingerprint import fingerprint

    found = primary_error(exception)
    return None if found is None else fingerprint(*found)


# -- what the evidence proves ----------------------------------------------------------------------


def judge(evidence: Mapping[str, Any] | None, *, min_verified: int = MIN_VERIFIED) -> tuple[RetryAction, str]:
    """What one fingerprint's evidence proves (a row of include/sql/queries/policy_evidence.sql).

    Proven PERMANENT (FAIL), the first that holds:
      1. a person's active "permanent" answer on a case of the fingerprint (the Doctor tab);
      2. a case of it ended by a change since its last verified successful retry (or with none):
         outcome fixed_by_change (a new DAG version) or fixed_by_person;
      3. at least `min_verified` verified failed retries of it since its last verified success (or with
         none).
    Proven TRANSIENT (RETRY): at least `min_verified` verified successful retries (the doctor's, a
    person's or Airflow's own; a person's "transient" answer counts as one), no failed retry since the
    last of them, no case of it ever fixed by a change, and no person's "permanent".
    Anything else is unknown (DEFAULT).

    Args:
        evidence: the row as a dict (succeeded, last_succeeded, failed_since, fixed_by_change_since,
            fixed_by_person_since, fixed, permanent), or None: nothing known.
        min_verified: outcomes needed (`MIN_VERIFIED`).
    Returns:
        (action, why): why in words, counts and dates only ("3 verified retries, last 2026-12-01").
    """
    if not evidence:
        return RetryAction.DEFAULT, "no verified outcome here"
    if evidence["permanent"]:
        return RetryAction.FAIL, f"a person answered permanent on {_cases(evidence['permanent'])}"
    since = "since its last verified retry" if evidence["succeeded"] else "with no verified retry"
    for outcome, by in FIXED_BY.items():
        if evidence[f"{outcome}_since"]:
            return RetryAction.FAIL, f"fixed by {by} {since}"
    failed = evidence["failed_since"]
    if failed >= min_verified:
        return RetryAction.FAIL, f"{failed} failed retries {since}"
    succeeded = evidence["succeeded"]
    if succeeded >= min_verified and not failed and not evidence["fixed"]:
        return RetryAction.RETRY, f"{succeeded} verified retries, last {_day(evidence['last_succeeded'])}"
    return RetryAction.DEFAULT, f"{succeeded} verified and {failed} failed retries since"


def _cases(n: int) -> str:
    return "1 case" if n == 1 else f"{n} cases"


def _day(value: Any) -> str:
    return value.date().isoformat() if isinstance(value, datetime) else str(value)[:10]


def reason(fingerprint: str, action: RetryAction, why: str, *, proven: bool = True) -> str:
    """The reason Airflow stores as the try's retry_reason (500 characters at most; this is far
    shorter): `airflow-doctor: fingerprint <first 12 hex digits> proven transient here (<why>)`, or
    `... not proven here (<why>; on_unknown)` for a decision `on_unknown` made (`proven` False)."""
    if not proven:
        return f"{REASON_PREFIX}: fingerprint {fingerprint[:12]} not proven here ({why}; on_unknown)"
    label = {RetryAction.RETRY: "transient", RetryAction.FAIL: "permanent"}.get(action, "either way")
    return f"{REASON_PREFIX}: fingerprint {fingerprint[:12]} proven {label} here ({why})"


def retry_delay(backoff_seconds: float | None, try_number: int, context: Any = None) -> timedelta | None:
    """The delay a RETRY asks for: the doctor's backoff for the fingerprint's class, doubled per try.

    Args:
        backoff_seconds: the first try's backoff (`[doctor] retry_backoff_seconds` when the proven
            cases' diagnosis said retry_with_backoff), or None: no backoff.
        try_number: the failed try (1-based): the backoff doubles per earlier try, as the doctor's
            doubles per earlier clear, capped at `BACKOFF_CAP_SECONDS`.
        context: the task's context; its task's own `retry_delay` wins when it is as long or longer,
            and Airflow's exponential backoff when the task asks for it (the policy never shortens the
            author's wait).
    Returns:
        the delay, or None: the task's own retry_delay applies.
    """
    if backoff_seconds is None or backoff_seconds <= 0:
        return None
    seconds = min(BACKOFF_CAP_SECONDS, float(backoff_seconds) * 2 ** max(0, int(try_number) - 1))
    task = _get(context, "task")
    own = getattr(task, "retry_delay", None)
    if getattr(task, "retry_exponential_backoff", False):
        return None
    if isinstance(own, timedelta) and own.total_seconds() >= seconds:
        return None
    return timedelta(seconds=seconds)


def _get(context: Any, key: str) -> Any:
    try:
        return context.get(key) if context is not None else None
    except Exception:  # noqa: BLE001 - a context that is not a mapping has nothing to give
        return None


def _try_key(context: Any, try_number: int) -> dict | None:
    """The failing try's identity from the context's task instance, or None without one."""
    ti = _get(context, "ti") or _get(context, "task_instance")
    if ti is None or not all(getattr(ti, k, None) for k in ("dag_id", "run_id", "task_id")):
        return None
    map_index = getattr(ti, "map_index", -1)
    return {
        "dag_id": str(ti.dag_id),
        "run_id": str(ti.run_id),
        "task_id": str(ti.task_id),
        "map_index": -1 if map_index is None else int(map_index),
        "try_number": int(try_number),
    }


def _decision(action: RetryAction, why_reason: str, delay: timedelta | None) -> RetryDecision:
    if action is RetryAction.RETRY:
        return RetryDecision.retry(delay=delay, reason=why_reason)
    if action is RetryAction.FAIL:
        return RetryDecision.fail(reason=why_reason)
    return RetryDecision.default()


def _check_on_unknown(on_unknown: RetryAction) -> RetryAction:
    action = RetryAction(on_unknown)
    if action is RetryAction.RETRY:
        raise ValueError("on_unknown must be DEFAULT or FAIL: the policy never retries the unproven")
    return action


# -- the policies ----------------------------------------------------------------------------------


class _AdviceOnly(RetryPolicy):
    """A policy whose decision is advice: `evaluate` never raises an Exception. Whatever goes wrong in
    `_decide` (no connection, an unreachable database, a timeout, a missing table, an exception it
    cannot read) is logged at warning and answered with DEFAULT: Airflow's own retries apply."""

    def evaluate(
        self,
        exception: BaseException,
        try_number: int,
        max_tries: int,
        context: Any = None,
    ) -> RetryDecision:
        """The decision for one failed try (see the class).

        Args:
            exception: what the task raised.
            try_number: the failed try, 1-based.
            max_tries: the task's maximum tries (unused: a RETRY cannot extend them anyway).
            context: the task's context (its `ti` names the try recorded; its `task` the author's delay).
        Returns:
            a RetryDecision; DEFAULT when anything went wrong.
        """
        try:
            return self._decide(exception, try_number, context)
        except Exception as exc:  # noqa: BLE001 - advice only: never fail the failure path itself
            log.warning(
                "airflow-doctor %s: no decision (%s: %s); Airflow's own retries apply",
                type(self).__name__,
                type(exc).__name__,
                str(exc)[:300],
            )
            return RetryDecision.default()

    def _decide(self, exception: BaseException, try_number: int, context: Any) -> RetryDecision:
        raise NotImplementedError


class DoctorRetryPolicy(_AdviceOnly):
    """Retry what this deployment has proven transient, fail what it has proven permanent, else DEFAULT.

    Use `retry_policy=DoctorRetryPolicy()` on a task, in a DAG's `default_args`, or through a cluster
    policy (docs/retry-policy.md). It composes: `ChainRetryPolicy([author_policy, DoctorRetryPolicy()])`
    asks the author's policy first. Nothing is stored in the serialized DAG (Airflow keeps only a
    `has_retry_policy` flag), so the object need not serialize.

    Args:
        conn_id: the knowledge base's Airflow connection (default: the doctor's, `doctor_db`).
        min_verified: verified outcomes a fingerprint needs (`MIN_VERIFIED`, 2, and why), at least 1.
        on_unknown: the decision for a fingerprint the knowledge base proves neither way:
            RetryAction.DEFAULT (the task's own retries) or RetryAction.FAIL (fail anything not proven
            transient). Not used when the knowledge base cannot be asked: that is always DEFAULT.
    Raises:
        ValueError: min_verified below 1, or on_unknown RETRY (the policy never retries the unproven).
    """

    def __init__(
        self,
        conn_id: str | None = None,
        min_verified: int = MIN_VERIFIED,
        on_unknown: RetryAction = RetryAction.DEFAULT,
    ) -> None:
        if int(min_verified) < 1:
            raise ValueError("min_verified must be at least 1")
        self.conn_id = conn_id
        self.min_verified = int(min_verified)
        self.on_unknown = _check_on_unknown(on_unknown)

    def __repr__(self) -> str:
        return (
            f"DoctorRetryPolicy(conn_id={self.conn_id!r}, min_verified={self.min_verified}, "
            f"on_unknown={self.on_unknown})"
        )

    def _decide(self, exception: BaseException, try_number: int, context: Any) -> RetryDecision:
        fp = fingerprint_of(exception)
        if fp is None:
            return RetryDecision.default()
        key = _try_key(context, try_number)
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute("SET LOCAL statement_timeout = %s", (STATEMENT_TIMEOUT_MS,))
            evidence = _evidence(cur, fp, key)
            action, why = judge(evidence, min_verified=self.min_verified)
            proven = action is not RetryAction.DEFAULT
            action = action if proven else self.on_unknown
            if action is RetryAction.DEFAULT:
                return RetryDecision.default()
            delay = retry_delay(backoff_for(action, evidence), try_number, context)
            decision = _decision(action, reason(fp, action, why, proven=proven), delay)
            if key is not None:
                _record(cur, key, fp, decision)
        return decision

    def _connection(self):
        """A psycopg2 connection to the knowledge base in a transaction (`KnowledgeBase.connection`),
        waiting at most CONNECT_TIMEOUT_SECONDS for the server."""
        from airflow_doctor.knowledge.store import KnowledgeBase
        from airflow_doctor.settings import DB_CONN_ID

        return KnowledgeBase(
            conn_id=self.conn_id or DB_CONN_ID, connect_timeout=CONNECT_TIMEOUT_SECONDS
        ).connection()


def _evidence(cur, fingerprint: str | None, key: dict | None = None) -> dict | list[dict] | None:
    """Run policy_evidence.sql: one fingerprint's row (or None), or with fingerprint None every row."""
    from airflow_doctor.knowledge.store import _dicts, sql

    mine = key or {}
    params = {k: mine.get(k) for k in ("dag_id", "run_id", "task_id", "map_index")}
    cur.execute(sql("policy_evidence"), {"fingerprint": fingerprint, **params})
    rows = _dicts(cur)
    if fingerprint is None:
        return rows
    return rows[0] if rows else None


def _record(cur, key: dict, fingerprint: str, decision: RetryDecision) -> None:
    """Write the decision to doctor.policy_decisions in a savepoint: best-effort, a refused write
    (a read-only login, the table not migrated yet) is logged and the decision still stands."""
    from airflow_doctor.knowledge.store import sql

    cur.execute("SAVEPOINT policy_decision")
    try:
        cur.execute(
            sql("insert_policy_decision"),
            {
                **key,
                "fingerprint": fingerprint,
                "action": decision.action.value,
                "reason": decision.reason,
                "delay_seconds": decision.retry_delay.total_seconds() if decision.retry_delay else None,
            },
        )
    except Exception as exc:  # noqa: BLE001 - the record is for people; the decision does not depend on it
        cur.execute("ROLLBACK TO SAVEPOINT policy_decision")
        log.warning("airflow-doctor retry policy: decision not recorded (%s)", str(exc).strip()[:300])
    else:
        cur.execute("RELEASE SAVEPOINT policy_decision")


def backoff_for(action: RetryAction, evidence: Mapping[str, Any] | None) -> float | None:
    """The first try's backoff, seconds, for a RETRY of a fingerprint whose latest verified success was
    diagnosed retry_with_backoff: `[doctor] retry_backoff_seconds`, read now (the doctor's own
    backoff, docs/gate.md). None for any other decision or diagnosis: the task's own retry_delay."""
    if action is not RetryAction.RETRY or not evidence:
        return None
    if evidence.get("recommended_action") != "retry_with_backoff":
        return None
    from airflow_doctor.settings import read_option

    return float(read_option("retry_backoff_seconds"))


class StaticDoctorRetryPolicy(_AdviceOnly):
    """`DoctorRetryPolicy` without a database: decides from a table exported by `airflow-doctor
    export-policy` (`export_module`), fingerprinting the exception the same way (`fingerprint_of`).

    Args:
        table: fingerprint (16 hex digits) -> {"action": "retry" | "fail", "reason": str,
            "delay_seconds": float | None (the first try's backoff; doubled per try as
            `retry_delay` does)}.
    Raises:
        ValueError: an entry's action is neither "retry" nor "fail".
    """

    def __init__(self, table: Mapping[str, Mapping[str, Any]]) -> None:
        bad = sorted(fp for fp, entry in table.items() if entry.get("action") not in {"retry", "fail"})
        if bad:
            raise ValueError(f"actions must be 'retry' or 'fail'; not for {', '.join(bad[:5])}")
        self.table = {str(fp): dict(entry) for fp, entry in table.items()}

    def __repr__(self) -> str:
        return f"StaticDoctorRetryPolicy(<{len(self.table)} fingerprints>)"

    def _decide(self, exception: BaseException, try_number: int, context: Any) -> RetryDecision:
        """The table's decision for the exception's fingerprint, else DEFAULT."""
        fp = fingerprint_of(exception)
        entry = self.table.get(fp) if fp else None
        if entry is None:
            return RetryDecision.default()
        action = RetryAction(entry["action"])
        delay = retry_delay(entry.get("delay_seconds"), try_number, context)
        return _decision(action, str(entry.get("reason") or reason(fp, action, "exported")), delay)


def static_policy(table: Mapping[str, Mapping[str, Any]], exceptions: Iterable[str] = ()) -> RetryPolicy:
    """The policy an exported module exposes: its fingerprints first, then its retry-safe exception
    classes (an `ExceptionRetryPolicy` whose one rule retries them, with the task's own delay), chained
    with `ChainRetryPolicy` (first RETRY or FAIL wins).

    Args:
        table: as for `StaticDoctorRetryPolicy`.
        exceptions: dotted paths of exception classes (`RETRY_SAFE_EXCEPTIONS`); a path the worker
            cannot import matches nothing (Airflow logs it).
    Returns:
        a RetryPolicy (the static policy alone when `exceptions` is empty).
    """
    from airflow.sdk.definitions.retry_policy import ExceptionRetryPolicy, RetryRule

    fingerprints = StaticDoctorRetryPolicy(table)
    paths = sorted(set(exceptions))
    if not paths:
        return fingerprints
    from airflow.providers.common.compat.sdk import ChainRetryPolicy

    rule = RetryRule(
        exception=paths,
        action=RetryAction.RETRY,
        reason=f"{REASON_PREFIX}: a retry-safe exception class (exported)",
    )
    return ChainRetryPolicy([fingerprints, ExceptionRetryPolicy(rules=[rule])])


# -- export ----------------------------------------------------------------------------------------


def proven_table(kb, *, min_verified: int = MIN_VERIFIED) -> dict[str, dict]:
    """Every fingerprint the knowledge base proves transient or permanent, as `StaticDoctorRetryPolicy`
    takes them (`judge` on each row of policy_evidence.sql).

    Args:
        kb: a KnowledgeBase.
        min_verified: as for DoctorRetryPolicy.
    Returns:
        fingerprint -> {"action", "reason", "delay_seconds"}, sorted by fingerprint.
    Raises:
        psycopg2.Error: the database cannot be reached or read.
    """
    with kb.connection() as conn, conn.cursor() as cur:
        rows = _evidence(cur, None)
    table = {}
    for row in rows:
        action, why = judge(row, min_verified=min_verified)
        if action is not RetryAction.DEFAULT:
            table[row["fingerprint"]] = {
                "action": action.value,
                "reason": reason(row["fingerprint"], action, why),
                "delay_seconds": backoff_for(action, row),
            }
    return dict(sorted(table.items()))


def retry_safe_exceptions(kb=None) -> list[str]:
    """`RETRY_SAFE_EXCEPTIONS` whose catalogue class is retry-safe and, when `kb` is given, not demoted
    by this deployment's verified doctor retries (the gate's demotion: `[doctor] demote_failed_share`
    of at least `[doctor] demote_min_retries`).

    Returns:
        dotted paths, sorted.
    Raises:
        psycopg2.Error: `kb` cannot be read.
    """
    from airflow_doctor.judgement.catalogue import is_retry_safe

    classes = {c for c in RETRY_SAFE_EXCEPTIONS.values() if is_retry_safe(c)}
    if kb is not None:
        from airflow_doctor.judgement.gate import _demoted
        from airflow_doctor.settings import settings

        current = settings()
        classes = {c for c in classes if not _demoted(c, kb.class_outcomes(c), current)}
    return sorted(path for path, c in RETRY_SAFE_EXCEPTIONS.items() if c in classes)


def export_module(
    table: Mapping[str, Mapping[str, Any]],
    exceptions: Iterable[str],
    *,
    exported_on: date,
    min_verified: int = MIN_VERIFIED,
) -> str:
    """The text of a Python module exposing `retry_policy` (`static_policy`) for the table.

    Deterministic: fingerprints and exception paths sorted, the date (not the time) in the header, no
    connection details. It holds fingerprints (hashes), actions, delays and the reasons `reason`
    writes (counts and dates), never log text.

    Args:
        table: as `proven_table` returns.
        exceptions: as `retry_safe_exceptions` returns.
        exported_on: the day written in the header.
        min_verified: the evidence the table was built with (written in the header).
    Returns:
        the module's source, ending with a newline.
    """
    lines = [
        f'"""Retry decisions airflow-doctor proved on this deployment, exported {exported_on.isoformat()}.',
        "",
        "Written by `airflow-doctor export-policy` (docs/retry-policy.md) for workers that cannot reach",
        "the knowledge base. Review it like code before it ships. Fingerprints are hashes of normalised",
        f"errors; each was proven with at least {min_verified} verified outcomes. Use it as",
        "`retry_policy=retry_policy` (import it from this module).",
        '"""',
        "",
        "from airflow_doctor.retry_policy import static_policy",
        "",
        f"EXPORTED_ON = {exported_on.isoformat()!r}",
        f"MIN_VERIFIED = {int(min_verified)!r}",
        "",
        "FINGERPRINTS = {",
    ]
    for fp in sorted(table):
        entry = table[fp]
        delay = entry.get("delay_seconds")
        lines += [
            f"    {str(fp)!r}: {{",
            f"        'action': {str(entry['action'])!r},",
            f"        'reason': {str(entry['reason'])!r},",
            f"        'delay_seconds': {None if delay is None else float(delay)!r},",
            "    },",
        ]
    lines += ["}", "", "RETRY_SAFE_EXCEPTIONS = ["]
    lines += [f"    {path!r}," for path in sorted(set(exceptions))]
    lines += ["]", "", "retry_policy = static_policy(FINGERPRINTS, RETRY_SAFE_EXCEPTIONS)", ""]
    return "\n".join(lines)

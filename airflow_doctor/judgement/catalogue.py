"""The closed catalogue of retry-safe failure classes, and the readings the rules cannot settle alone.

`CATALOGUE` holds the only classes the gate may auto-retry without a near-identical past case
(docs/gate.md, "The catalogue"; issue "Judgement that generalises"); `DISPUTED` the readings an
independent diagnosis may settle (disputes.py). `catalogue_markdown` writes both as the tables of
docs/gate.md (its generated block `catalogue`).

A class is in the catalogue when a plain retry, with nothing changed, usually succeeds because
the cause is outside the task and passes by itself. Membership is decided by the offline rules on
the primary error (airflow_doctor/judgement/rules.py), never by the LLM: the LLM's "transient" and the
catalogue are two independent judges. Each entry says what the class is, why a retry helps and
its usual permanent look-alike (which the rules check first, and which memory of failed retries
catches when the rules cannot). Written from general Airflow operations experience (cloud
providers' retry guidance for 429/5xx/throttling, PostgreSQL's SQLSTATE classes 40001/40P01/57P0x,
Airflow's own zombie and executor-mismatch handling), not from any corpus line.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_doctor.judgement.error_classes import ErrorClass


@dataclass(frozen=True, kw_only=True)
class RetryClass:
    """One class of the catalogue (or one disputed reading) and its documentation.

    Attributes:
        name: the rules' class (`Rule.error_class`).
        what: what the failure is.
        why_retry_helps: why a retry with nothing changed usually succeeds (for a disputed reading:
            when the failure is transient).
        permanent_look_alike: the permanent failure that wears the same words.
    """

    name: ErrorClass
    what: str
    why_retry_helps: str
    permanent_look_alike: str


CATALOGUE: dict[ErrorClass, RetryClass] = {
    c.name: c
    for c in (
        RetryClass(
            name=ErrorClass.db_connection_lost,
            what=(
                "The database closed an open connection (server restart, failover, admin termination, "
                "a connection invalidated mid-transaction)."
            ),
            why_retry_helps="A new connection on the next try reaches the restarted or promoted server.",
            permanent_look_alike=(
                "An idle timeout on a proxy that cuts every long query the same way: recurs on every "
                "retry, so the class's retry outcomes demote it."
            ),
        ),
        RetryClass(
            name=ErrorClass.db_failover,
            what="The database is starting up, shutting down, in recovery, or a pooler lost its server.",
            why_retry_helps="Failover and restarts finish in seconds to minutes.",
            permanent_look_alike=(
                "Writing to a read-only replica by configuration (`read-only transaction` on every run)."
            ),
        ),
        RetryClass(
            name=ErrorClass.db_deadlock,
            what="The database aborted this transaction to break a deadlock (SQLSTATE 40P01).",
            why_retry_helps="The other transaction has finished; PostgreSQL's own docs say to retry.",
            permanent_look_alike=(
                "Two tasks that always run together and lock in opposite order (recurs on every run)."
            ),
        ),
        RetryClass(
            name=ErrorClass.db_serialization_failure,
            what="A serializable transaction conflicted with a concurrent one (SQLSTATE 40001).",
            why_retry_helps="Serialization failures are designed to be retried.",
            permanent_look_alike=(
                "None common; a retry storm under constant contention shows as failed retries."
            ),
        ),
        RetryClass(
            name=ErrorClass.lock_contention,
            what="A lock the task needed was held too long by someone else (lock wait timeout, file lock).",
            why_retry_helps="The holder finishes; the lock is free on the next try.",
            permanent_look_alike=(
                "A stuck session that never releases the lock: failed retries demote the class."
            ),
        ),
        RetryClass(
            name=ErrorClass.db_connection_limit,
            what="The database had no free connection slots.",
            why_retry_helps="Other clients disconnect; slots free up.",
            permanent_look_alike=(
                "A pool sized above max_connections (fails whenever the DAG runs at full width)."
            ),
        ),
        RetryClass(
            name=ErrorClass.dns_resolution_failure,
            what="The resolver failed for a moment (EAI_AGAIN, `Temporary failure in name resolution`).",
            why_retry_helps="The resolver's own error code says the failure is temporary.",
            permanent_look_alike=(
                "A host that does not exist (`Name or service not known`, NXDOMAIN): read as a "
                "misconfiguration by the rules."
            ),
        ),
        RetryClass(
            name=ErrorClass.connection_reset_by_remote,
            what=(
                "The remote end reset or dropped an open connection (reset by peer, broken pipe, "
                "remote disconnected, a truncated chunked response or log stream)."
            ),
            why_retry_helps="Load balancers, NAT and servers drop single connections; a new one succeeds.",
            permanent_look_alike="A proxy or server that always cuts requests of this size or duration.",
        ),
        RetryClass(
            name=ErrorClass.ssl_eof_error,
            what="The TLS connection was closed mid-handshake or mid-read (EOF, zero return).",
            why_retry_helps="Same as a reset: one connection was dropped.",
            permanent_look_alike=(
                "A certificate or protocol mismatch (`certificate verify failed`, wrong version): the rules "
                "read it as a TLS configuration error."
            ),
        ),
        RetryClass(
            name=ErrorClass.network_timeout,
            what="A call to a remote service timed out (connect or read).",
            why_retry_helps="The service or the path to it was slow for a while.",
            permanent_look_alike=(
                "A firewall that drops packets or a wrong address (times out every time): memory of "
                "failed retries blocks it."
            ),
        ),
        RetryClass(
            name=ErrorClass.http_5xx_server_error,
            what="The remote service answered 500, 502, 503 or 504 (an unavailable backend, a gateway).",
            why_retry_helps="Providers document 5xx as retryable with backoff; outages pass.",
            permanent_look_alike=(
                "A request the server always fails on (a 500 on a malformed payload): failed retries "
                "demote; 501/505 are not in the class."
            ),
        ),
        RetryClass(
            name=ErrorClass.rate_limited,
            what="The API throttled the client (429, Throttling, SlowDown, rate exceeded).",
            why_retry_helps="Throttling windows reset; providers ask clients to back off and retry.",
            permanent_look_alike=(
                "An exhausted plan quota (daily/monthly quota, 402): read as api_quota_exhausted first."
            ),
        ),
        RetryClass(
            name=ErrorClass.kafka_broker_unavailable,
            what="No Kafka broker answered.",
            why_retry_helps="Brokers restart and elect leaders within minutes.",
            permanent_look_alike="Wrong bootstrap servers (never reachable): failed retries block.",
        ),
        RetryClass(
            name=ErrorClass.remote_capacity_unavailable,
            what=(
                "The platform had no capacity for the requested compute: a spot or zone pool, a warehouse, "
                "a full browser grid, a namespace ResourceQuota that other pods hold, a cluster the cloud "
                "failed to launch (Databricks CLOUD_FAILURE / SERVICE_FAULT)."
            ),
            why_retry_helps="Capacity returns as other workloads finish.",
            permanent_look_alike=(
                "An instance type or size that does not exist in the region, an account quota, or a pod "
                "that requests more than its namespace's quota allows at all (read as "
                "resource_quota_too_small)."
            ),
        ),
        RetryClass(
            name=ErrorClass.service_unreachable,
            what=(
                "A remote service refused or failed the connection at an address that is right by "
                "construction: a non-local host on the protocol's standard port (5432, 443, 6379, ...), or "
                "a managed service's client (Snowflake's connector) giving up after its own retries of "
                "network errors."
            ),
            why_retry_helps=(
                "With the host and port right, a refusal means the service was not listening for a moment: "
                "restarting, failing over, a pod being replaced."
            ),
            permanent_look_alike=(
                "A refusal on a non-standard port (often the host-side published port used inside the "
                "container network) stays `connection_refused`; localhost inside a container is a "
                "misconfiguration; a decommissioned service refuses every try, so failed retries block it."
            ),
        ),
        RetryClass(
            name=ErrorClass.concurrent_update_conflict,
            what=(
                "Another writer updated the same object first: the Kubernetes API's 409 Conflict on a "
                "stale resourceVersion (`the object has been modified`)."
            ),
            why_retry_helps=(
                "Optimistic concurrency is designed to be retried: the next try reads the latest version."
            ),
            permanent_look_alike=(
                "Two tasks that always update the same object at once (recurs on every run): failed "
                "retries block it."
            ),
        ),
        RetryClass(
            name=ErrorClass.worker_lost,
            what=(
                "The task's worker or pod was lost, not its code: a zombie or heartbeat timeout, an "
                "executor reporting failure for a task that never ran, a preempted or evicted node."
            ),
            why_retry_helps="Another worker runs the same code fine; Airflow itself retries zombies.",
            permanent_look_alike=(
                "An out-of-memory kill (SIGKILL, exit 137) or a person marking the task failed (SIGTERM): "
                "neither is in this class. A worker that cannot load the DAG (a package missing only on the "
                "workers) makes the executor report the same 'never ran' failure on every try: the rules "
                "cannot tell it from a lost worker, so its first retry's verified failure blocks the next."
            ),
        ),
        RetryClass(
            name=ErrorClass.execution_api_race,
            what=(
                "Airflow 3's execution API refused a state change for a moment: a task instance not yet "
                "in the expected state (409 invalid_state), a task token that expired while queued, a "
                "5xx from the API server."
            ),
            why_retry_helps="The scheduler catches up; a new try gets a new token.",
            permanent_look_alike=(
                "A wrong execution API URL (refused every time) or task code calling the ORM (403 on "
                "every run): neither is in this class."
            ),
        ),
    )
}


# Disputed readings: classes the rules read from a surface that a failure of the other kind shares,
# so the rules alone cannot settle them. For each, `why_retry_helps` says when it is transient and
# `permanent_look_alike` when it is not. A transient class here (`connection_refused`,
# `pod_start_timeout`) is not in the catalogue: memory, a person (approval) or an independent
# diagnosis must vouch for it. A permanent one is the rules' default reading, not a veto. When an
# independent diagnosis settles one: gate.settle.
DISPUTED: dict[ErrorClass, RetryClass] = {
    c.name: c
    for c in (
        RetryClass(
            name=ErrorClass.connection_refused,
            what=(
                "A service (database, broker, API) refused the TCP connection on a port that is not its "
                "protocol's standard one, or could not be reached at an address no client printed."
            ),
            why_retry_helps=(
                "When the service was restarting or failing over, it listens again within minutes."
            ),
            permanent_look_alike=(
                "A wrong port in the connection (the host-side published port used inside the container "
                "network, a typo) refuses on every try, and in real logs it is about as common as a "
                "restart; localhost inside a container is read as a misconfiguration outright."
            ),
        ),
        RetryClass(
            name=ErrorClass.pod_start_timeout,
            what=(
                "The KubernetesPodOperator's pod stayed Pending longer than its startup timeout (`Pod took "
                "too long to start`)."
            ),
            why_retry_helps=(
                "When a node pool was still scaling up or an image pull was slow, the next pod is scheduled "
                "and starts in time."
            ),
            permanent_look_alike=(
                "A pod no node can take (requests above any node's size, a node selector or toleration that "
                "matches nothing) or an image that cannot be pulled: Pending on every try."
            ),
        ),
        RetryClass(
            name=ErrorClass.task_terminated,
            what="The task received SIGTERM or hit its execution_timeout.",
            why_retry_helps="When the platform stopped the task (a node drained), a retry runs elsewhere.",
            permanent_look_alike=(
                "A person marked the task failed (when Airflow's line before the SIGTERM says so, the "
                "reading is settled, never disputed), or the task is too slow for its timeout: a retry does "
                "the same again."
            ),
        ),
        RetryClass(
            name=ErrorClass.oom_killed_sigkill,
            what="The task was killed for memory (SIGKILL, exit 137, OOMKilled, resources exceeded).",
            why_retry_helps="When a neighbour on the node took the memory, a retry may fit.",
            permanent_look_alike=(
                "The task itself needs more memory than it has: an identical retry is killed again."
            ),
        ),
        RetryClass(
            name=ErrorClass.connection_misconfigured,
            what=(
                "A host does not resolve or cannot be routed to (`Name or service not known`, `No route to "
                "host`, `Network is unreachable`)."
            ),
            why_retry_helps=(
                "When the resolver or the route failed for a moment (a cluster DNS pod restarting, a NAT "
                "gateway or VPN flapping), the same host resolves on the next try."
            ),
            permanent_look_alike=(
                "A typo, a placeholder or a host of another network in the connection: fails on every try. "
                "A host in an AWS region that does not exist is read as settled, never disputed."
            ),
        ),
        RetryClass(
            name=ErrorClass.connection_refused_localhost,
            what="A connection to localhost was refused.",
            why_retry_helps="On a single host or with a sidecar, the local service was restarting.",
            permanent_look_alike=(
                "Inside a container localhost is the container itself, so the connection should name the "
                "service's host: the common case, hence the rules' reading."
            ),
        ),
        RetryClass(
            name=ErrorClass.missing_object,
            what=(
                "A table, file, key, pod or API object the task needs was not found (`does not exist`, "
                "NoSuchKey, 404)."
            ),
            why_retry_helps=(
                "When it was not there yet (an upstream load still writing) or was removed by a concurrent "
                "process (a Kubernetes pod garbage-collected between a trigger firing and the worker's "
                "return), the next try finds it or creates it again."
            ),
            permanent_look_alike="A wrong name, path or id in the task or its input: not found on every try.",
        ),
        RetryClass(
            name=ErrorClass.duplicate_key_violation,
            what="A write violated a unique, not-null or foreign-key constraint.",
            why_retry_helps=(
                "When two writers raced for the same generated key (a timestamp-based job id shared by "
                "parallel tasks), the next try gets a new key."
            ),
            permanent_look_alike=(
                "Data that duplicates a key, or a load that is not idempotent: violates the constraint on "
                "every try."
            ),
        ),
    )
}


def is_retry_safe(error_class: str | None) -> bool:
    """Whether `error_class` (a rule's class, not the LLM's; an ErrorClass or its string) is in the
    retry-safe catalogue."""
    return bool(error_class) and error_class in CATALOGUE


def catalogue_markdown() -> str:
    """The catalogue and the disputed readings as Markdown tables, for docs/gate.md.

    Returns:
        two tables, one row per entry in the order of `CATALOGUE` and `DISPUTED`: the class in a code
        span, then `what`, `why_retry_helps` and `permanent_look_alike` verbatim (a `|` escaped), the
        second table after a one-line lead. No trailing newline (scripts/docs.py puts the markers).
    """

    def table(header: str, entries: dict[ErrorClass, RetryClass]) -> list[str]:
        rows = [
            f"| `{c.name}` | {_cell(c.what)} | {_cell(c.why_retry_helps)} | {_cell(c.permanent_look_alike)} |"
            for c in entries.values()
        ]
        return [header, "|---|---|---|---|", *rows]

    return "\n".join(
        [
            *table("| class | what it is | why a retry helps | its usual permanent look-alike |", CATALOGUE),
            "",
            "Disputed readings: the surface a transient and a permanent failure share.",
            "",
            *table("| reading | what it is | when it is transient | its permanent look-alike |", DISPUTED),
        ]
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")

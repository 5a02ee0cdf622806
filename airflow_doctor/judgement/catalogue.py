"""The closed catalogue of retry-safe failure classes: the only classes the gate may auto-retry
without a near-identical past case (docs/gate.md, issue "Judgement that generalises").

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


@dataclass(frozen=True)
class RetryClass:
    """One retry-safe class: its name (the rules' `error_class`) and its documentation."""

    name: str
    what: str
    why_retry_helps: str
    permanent_look_alike: str


CATALOGUE: dict[str, RetryClass] = {
    c.name: c
    for c in (
        RetryClass(
            "db_connection_lost",
            "The database closed an open connection (server restart, failover, admin termination, "
            "a connection invalidated mid-transaction).",
            "A new connection on the next try reaches the restarted or promoted server.",
            "An idle timeout on a proxy that cuts every long query the same way: recurs on every "
            "retry, so the class's retry outcomes demote it.",
        ),
        RetryClass(
            "db_failover",
            "The database is starting up, shutting down, in recovery, or a pooler lost its server.",
            "Failover and restarts finish in seconds to minutes.",
            "Writing to a read-only replica by configuration (`read-only transaction` on every run).",
        ),
        RetryClass(
            "db_deadlock",
            "The database aborted this transaction to break a deadlock (SQLSTATE 40P01).",
            "The other transaction has finished; PostgreSQL's own docs say to retry.",
            "Two tasks that always run together and lock in opposite order (recurs on every run).",
        ),
        RetryClass(
            "db_serialization_failure",
            "A serializable transaction conflicted with a concurrent one (SQLSTATE 40001).",
            "Serialization failures are designed to be retried.",
            "None common; a retry storm under constant contention shows as failed retries.",
        ),
        RetryClass(
            "lock_contention",
            "A lock the task needed was held too long by someone else (lock wait timeout, file lock).",
            "The holder finishes; the lock is free on the next try.",
            "A stuck session that never releases the lock: failed retries demote the class.",
        ),
        RetryClass(
            "db_connection_limit",
            "The database had no free connection slots.",
            "Other clients disconnect; slots free up.",
            "A pool sized above max_connections (fails whenever the DAG runs at full width).",
        ),
        RetryClass(
            "dns_resolution_failure",
            "The resolver failed for a moment (EAI_AGAIN, `Temporary failure in name resolution`).",
            "The resolver's own error code says the failure is temporary.",
            "A host that does not exist (`Name or service not known`, NXDOMAIN): read as a "
            "misconfiguration by the rules.",
        ),
        RetryClass(
            "connection_reset_by_remote",
            "The remote end reset or dropped an open connection (reset by peer, broken pipe, "
            "remote disconnected, a truncated chunked response or log stream).",
            "Load balancers, NAT and servers drop single connections; a new one succeeds.",
            "A proxy or server that always cuts requests of this size or duration.",
        ),
        RetryClass(
            "ssl_eof_error",
            "The TLS connection was closed mid-handshake or mid-read (EOF, zero return).",
            "Same as a reset: one connection was dropped.",
            "A certificate or protocol mismatch (`certificate verify failed`, wrong version): the rules "
            "read it as a TLS configuration error.",
        ),
        RetryClass(
            "network_timeout",
            "A call to a remote service timed out (connect or read).",
            "The service or the path to it was slow for a while.",
            "A firewall that drops packets or a wrong address (times out every time): memory of "
            "failed retries blocks it.",
        ),
        RetryClass(
            "http_5xx_server_error",
            "The remote service answered 500, 502, 503 or 504 (an unavailable backend, a gateway).",
            "Providers document 5xx as retryable with backoff; outages pass.",
            "A request the server always fails on (a 500 on a malformed payload): failed retries "
            "demote; 501/505 are not in the class.",
        ),
        RetryClass(
            "rate_limited",
            "The API throttled the client (429, Throttling, SlowDown, rate exceeded).",
            "Throttling windows reset; providers ask clients to back off and retry.",
            "An exhausted plan quota (daily/monthly quota, 402): read as api_quota_exhausted first.",
        ),
        RetryClass(
            "kafka_broker_unavailable",
            "No Kafka broker answered.",
            "Brokers restart and elect leaders within minutes.",
            "Wrong bootstrap servers (never reachable): failed retries block.",
        ),
        RetryClass(
            "remote_capacity_unavailable",
            "The platform had no capacity for the requested compute: a spot or zone pool, a warehouse, "
            "a full browser grid, a namespace ResourceQuota that other pods hold, a cluster the cloud "
            "failed to launch (Databricks CLOUD_FAILURE / SERVICE_FAULT).",
            "Capacity returns as other workloads finish.",
            "An instance type or size that does not exist in the region, an account quota, or a pod "
            "that requests more than its namespace's quota allows at all (read as "
            "resource_quota_too_small).",
        ),
        RetryClass(
            "service_unreachable",
            "A remote service refused or failed the connection at an address that is right by "
            "construction: a non-local host on the protocol's standard port (5432, 443, 6379, ...), or "
            "a managed service's client (Snowflake's connector) giving up after its own retries of "
            "network errors.",
            "With the host and port right, a refusal means the service was not listening for a moment: "
            "restarting, failing over, a pod being replaced.",
            "A refusal on a non-standard port (often the host-side published port used inside the "
            "container network) stays `connection_refused`; localhost inside a container is a "
            "misconfiguration; a decommissioned service refuses every try, so failed retries block it.",
        ),
        RetryClass(
            "concurrent_update_conflict",
            "Another writer updated the same object first: the Kubernetes API's 409 Conflict on a "
            "stale resourceVersion (`the object has been modified`).",
            "Optimistic concurrency is designed to be retried: the next try reads the latest version.",
            "Two tasks that always update the same object at once (recurs on every run): failed "
            "retries block it.",
        ),
        RetryClass(
            "worker_lost",
            "The task's worker or pod was lost, not its code: a zombie or heartbeat timeout, an "
            "executor reporting failure for a task that never ran, a preempted or evicted node.",
            "Another worker runs the same code fine; Airflow itself retries zombies.",
            "An out-of-memory kill (SIGKILL, exit 137) or a person marking the task failed (SIGTERM): "
            "neither is in this class. A worker that cannot load the DAG (a package missing only on the "
            "workers) makes the executor report the same 'never ran' failure on every try: the rules "
            "cannot tell it from a lost worker, so its first retry's verified failure blocks the next.",
        ),
        RetryClass(
            "execution_api_race",
            "Airflow 3's execution API refused a state change for a moment: a task instance not yet "
            "in the expected state (409 invalid_state), a task token that expired while queued, a "
            "5xx from the API server.",
            "The scheduler catches up; a new try gets a new token.",
            "A wrong execution API URL (refused every time) or task code calling the ORM (403 on "
            "every run): neither is in this class.",
        ),
    )
}


# Disputed readings: classes the rules read from a surface that a failure of the other kind shares,
# so the rules alone cannot settle them. For each, `why_retry_helps` says when it is transient and
# `permanent_look_alike` when it is not. A transient class here (`connection_refused`,
# `pod_start_timeout`) is not in the catalogue: memory, a person (approval) or an independent
# diagnosis must vouch for it. A permanent one is the rules' default reading. Either way an
# independent diagnosis may settle it as transient on a log that does not argue for a retry, once per
# task instance (airflow_doctor/judgement/disputes.py).
DISPUTED: dict[str, RetryClass] = {
    c.name: c
    for c in (
        RetryClass(
            "connection_refused",
            "A service (database, broker, API) refused the TCP connection on a port that is not its "
            "protocol's standard one, or could not be reached at an address no client printed.",
            "When the service was restarting or failing over, it listens again within minutes.",
            "A wrong port in the connection (the host-side published port used inside the container "
            "network, a typo) refuses on every try, and in real logs it is about as common as a "
            "restart; localhost inside a container is read as a misconfiguration outright.",
        ),
        RetryClass(
            "pod_start_timeout",
            "The KubernetesPodOperator's pod stayed Pending longer than its startup timeout (`Pod took "
            "too long to start`).",
            "When a node pool was still scaling up or an image pull was slow, the next pod is scheduled "
            "and starts in time.",
            "A pod no node can take (requests above any node's size, a node selector or toleration that "
            "matches nothing) or an image that cannot be pulled: Pending on every try.",
        ),
        RetryClass(
            "task_terminated",
            "The task received SIGTERM or hit its execution_timeout.",
            "When the platform stopped the task (a node drained), a retry runs elsewhere.",
            "A person marked the task failed (when Airflow's line before the SIGTERM says so, the "
            "reading is settled, never disputed), or the task is too slow for its timeout: a retry does "
            "the same again.",
        ),
        RetryClass(
            "oom_killed_sigkill",
            "The task was killed for memory (SIGKILL, exit 137, OOMKilled, resources exceeded).",
            "When a neighbour on the node took the memory, a retry may fit.",
            "The task itself needs more memory than it has: an identical retry is killed again.",
        ),
        RetryClass(
            "connection_misconfigured",
            "A host does not resolve or cannot be routed to (`Name or service not known`, `No route to "
            "host`, `Network is unreachable`).",
            "When the resolver or the route failed for a moment (a cluster DNS pod restarting, a NAT "
            "gateway or VPN flapping), the same host resolves on the next try.",
            "A typo, a placeholder or a host of another network in the connection: fails on every try. "
            "A host in an AWS region that does not exist is read as settled, never disputed.",
        ),
        RetryClass(
            "connection_refused_localhost",
            "A connection to localhost was refused.",
            "On a single host or with a sidecar, the local service was restarting.",
            "Inside a container localhost is the container itself, so the connection should name the "
            "service's host: the common case, hence the rules' reading.",
        ),
        RetryClass(
            "missing_object",
            "A table, file, key, pod or API object the task needs was not found (`does not exist`, "
            "NoSuchKey, 404).",
            "When it was not there yet (an upstream load still writing) or was removed by a concurrent "
            "process (a Kubernetes pod garbage-collected between a trigger firing and the worker's "
            "return), the next try finds it or creates it again.",
            "A wrong name, path or id in the task or its input: not found on every try.",
        ),
        RetryClass(
            "duplicate_key_violation",
            "A write violated a unique, not-null or foreign-key constraint.",
            "When two writers raced for the same generated key (a timestamp-based job id shared by "
            "parallel tasks), the next try gets a new key.",
            "Data that duplicates a key, or a load that is not idempotent: violates the constraint on "
            "every try.",
        ),
    )
}


def is_retry_safe(error_class: str | None) -> bool:
    """Whether `error_class` (a rule's class, not the LLM's) is in the retry-safe catalogue."""
    return bool(error_class) and error_class in CATALOGUE

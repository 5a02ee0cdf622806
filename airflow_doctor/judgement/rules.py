"""Rules of the offline diagnoser: what common error messages mean, without an LLM.

Each rule is a regex over the primary error (`ExceptionType: message`), tried in order (the
first match wins, so specific permanent causes come before the transient look-alikes they
resemble: an unknown host before a DNS hiccup, an exhausted quota before a throttle, a bad
certificate before a dropped TLS connection, an out-of-memory kill or a SIGTERM before a lost
worker). When the primary error matches nothing specific, its chained causes are tried. A
transient class a rule names is retry-safe only if it is in the catalogue (catalogue.py).

Every rule has a stable `id` (kebab-case; tests pin the published ones): a reading can be cited by
it, whatever the rule's position in the table. Its class is an `ErrorClass` (error_classes.py),
the vocabulary the catalogue and the disputed readings share.

Confidences are the authors' estimates of how often the pattern alone names the right class
and transience, from general Airflow operations experience (never fitted to a corpus line). A
class whose permanent look-alike rarely wears its words ("no capacity" is seldom an unknown
instance type) is estimated higher than one whose look-alike often does (a bare 429 is also what
an exhausted plan quota returns; a firewall also times out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from airflow_doctor.judgement.error_classes import ErrorClass
from airflow_doctor.logs.excerpt import dbt_error, is_exception_type, is_wrapper
from airflow_doctor.models import Action

# How the table's patterns are compiled: case-insensitive (libraries differ in case: `Connection
# reset`, `connection reset`) and multi-line (`^` anchors a line of a multi-line message).
TABLE_FLAGS = re.IGNORECASE | re.MULTILINE
# A permanent rule at least this sure outweighs a transient reading elsewhere in the excerpt: a
# context line's (`classify`), a cause's (`permanent_causes`) and an LLM's "transient" (the cross-check).
VETO_CONFIDENCE = 0.8


@dataclass(frozen=True, kw_only=True)
class Rule:
    """A regex over `Type: message` and what a match means.

    Attributes:
        id: stable kebab-case name of the rule (`db-statement-timeout`), unique across the rules.
        pattern: the regex; a str is compiled with TABLE_FLAGS, a compiled pattern keeps its own flags.
        error_class: the class a match reads the error as.
        transient: whether a retry with nothing changed is expected to succeed.
        action: the recommended action (models.Action).
        confidence: the authors' estimate (0-1) that a match names the right class and transience.
        root_cause: one sentence for people (notes, email, Slack, the UI).
        fix_step: the first thing to do about it.
    """

    id: str
    pattern: re.Pattern[str]
    error_class: ErrorClass
    transient: bool
    action: Action
    confidence: float
    root_cause: str
    fix_step: str

    def __post_init__(self) -> None:
        if isinstance(self.pattern, str):
            object.__setattr__(self, "pattern", re.compile(self.pattern, TABLE_FLAGS))


RULES: tuple[Rule, ...] = (
    # Airflow 3's execution API (before the 401/403 and credentials rules its messages contain)
    # The task supervisor's own call to start or report the try refused (`HTTP Request: PATCH
    # .../execution/task-instances/<id>/run "HTTP/1.1 403 Forbidden"`): a task token that expired
    # while the try sat queued, or a state race; the supervisor then kills the child it forked.
    Rule(
        id="execution-api-refused-state-change",
        pattern=(
            r"/execution/task-instances/\S+\"? \"HTTP/[\d.]+ 40[39]\b|"
            r"API_SERVER_ERROR.{0,80}\b409\b|invalid_state|TI was not in (?:a )?running state|"
            r"Invalid auth token: .{0,20}(?:Signature has )?expired|API_SERVER_ERROR.{0,80}\b50[0234]\b"
        ),
        error_class=ErrorClass.execution_api_race,
        transient=True,
        action=Action.retry,
        confidence=0.8,
        root_cause=(
            "Airflow's execution API refused a state change for a moment (a scheduler race or an expired task "
            "token)."
        ),
        fix_step="Retry; upgrade Airflow if it recurs.",
    ),
    # The Kubernetes API's optimistic-concurrency answer (409 Conflict on a stale resourceVersion): its
    # own message says to re-read and try again (API conventions, "Concurrency Control and Consistency").
    Rule(
        id="kubernetes-409-object-modified",
        pattern=r"the object has been modified; please apply your changes to the latest version and try again",
        error_class=ErrorClass.concurrent_update_conflict,
        transient=True,
        action=Action.retry,
        confidence=0.85,
        root_cause="Another writer updated the same Kubernetes object first (a stale resourceVersion).",
        fix_step="Retry; the next try reads the latest version.",
    ),
    # Databricks' termination reason types (Clusters API, TerminationReason.type): SERVICE_FAULT and
    # CLOUD_FAILURE are documented as retryable, CLIENT_ERROR as "fix the parameters" (not matched).
    Rule(
        id="databricks-cloud-or-service-fault",
        pattern=r"\((?:CLOUD_FAILURE|SERVICE_FAULT)\)|\btype\W{1,4}(?:CLOUD_FAILURE|SERVICE_FAULT)\b",
        error_class=ErrorClass.remote_capacity_unavailable,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.8,
        root_cause=(
            "The remote compute platform failed to provide the cluster (a cloud or service fault, by its own "
            "termination type)."
        ),
        fix_step="Retry later; check the platform's status page if it persists.",
    ),
    # A throttle that wears a 403: BigQuery answers rateLimitExceeded with 403 Forbidden, and
    # Google's docs say to retry it with exponential backoff (before the access-denied rule).
    Rule(
        id="bigquery-rate-limit-exceeded",
        pattern=r"Exceeded rate limits|\b(?:user)?rateLimitExceeded\b",
        error_class=ErrorClass.rate_limited,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.85,
        root_cause="The service throttled the client's request rate.",
        fix_step="Retry with backoff; lower concurrency.",
    ),
    # -- resources --------------------------------------------------------------------------
    Rule(
        id="oom-or-sigkill",
        pattern=(
            r"return code -9\b|Negsignal\.SIGKILL|SIGKILL|exit code 137|exit status 137|OOMKilled|MemoryError|"
            r"Cannot allocate memory|out of memory|OutOfMemory|memory limit|Resources exceeded|resourcesExceeded"
        ),
        error_class=ErrorClass.oom_killed_sigkill,
        transient=False,
        action=Action.retry_with_more_resources,
        confidence=0.8,
        root_cause="The task ran out of memory (or its compute's resources) and was killed.",
        fix_step="Give the task more memory or process its data in chunks.",
    ),
    Rule(
        id="disk-full",
        pattern=(
            r"No space left on device|Disk quota exceeded|ephemeral local storage usage exceeds|"
            r"ephemeral-storage.{0,60}exceed"
        ),
        error_class=ErrorClass.disk_full,
        transient=False,
        action=Action.retry_with_more_resources,
        confidence=0.85,
        root_cause="The worker's disk is full.",
        fix_step="Free or enlarge the worker's disk; clean temporary files.",
    ),
    # A crash in native code (a segfault): the same input and binaries crash the same way again;
    # before the lost-worker rule, whose "worker exited prematurely" it also wears.
    Rule(
        id="native-segfault",
        pattern=r"SIGSEGV|Segmentation fault|signal 11\b|exit code 139\b|return code -11\b|Negsignal\.SIGSEGV",
        error_class=ErrorClass.native_crash,
        transient=False,
        action=Action.notify,
        confidence=0.8,
        root_cause="The task's process crashed in native code (a segmentation fault).",
        fix_step="Check the native libraries' versions (a wheel built for another platform, a driver mismatch).",
    ),
    # -- credentials and permissions (before network look-alikes) ----------------------------
    Rule(
        id="credentials-rejected",
        pattern=(
            r"password authentication failed|Incorrect username or password|invalid (?:credentials|api key|token)|"
            r"\b401\b|Unauthorized|AuthenticationFailed|ClientAuthenticationError|InvalidClientTokenId|"
            r"SignatureDoesNotMatch|ExpiredToken|token (?:has )?expired|failed to authenticate|"
            r"Authentication (?:\(\w+\) )?failed|AuthenticationError|account (?:is |has been )?(?:temporarily )?locked|"
            r"token is malformed|InvalidToken|Application-specific password"
        ),
        error_class=ErrorClass.invalid_credentials,
        transient=False,
        action=Action.notify,
        confidence=0.85,
        root_cause="The credentials were rejected.",
        fix_step="Fix or rotate the credentials in the Airflow connection.",
    ),
    Rule(
        id="credentials-missing",
        pattern=r"DefaultCredentialsError|NoCredentialsError|Unable to locate credentials|credentials were not found",
        error_class=ErrorClass.missing_credentials,
        transient=False,
        action=Action.notify,
        confidence=0.85,
        root_cause="No credentials were found.",
        fix_step="Configure the connection's credentials.",
    ),
    Rule(
        id="file-permission-denied",
        pattern=r"PermissionError|Permission denied|Operation not permitted|Read-only file system",
        error_class=ErrorClass.file_permission_denied,
        transient=False,
        action=Action.notify,
        confidence=0.75,
        root_cause="The worker's user may not access a path.",
        fix_step="Fix the path's ownership or mode.",
    ),
    Rule(
        id="access-denied-403",
        pattern=(
            r"AccessDenied|Access Denied|\b403\b|Forbidden|not authorized to perform|InsufficientPrivilege|"
            r"insufficient privileges|permission .* denied|does not have .* access"
        ),
        error_class=ErrorClass.access_denied,
        transient=False,
        action=Action.notify,
        confidence=0.8,
        root_cause="The identity lacks a permission.",
        fix_step="Grant the missing permission or use another identity.",
    ),
    # -- configuration -----------------------------------------------------------------------
    Rule(
        id="airflow-connection-missing",
        pattern=r"conn_id .* isn't defined|CONNECTION_NOT_FOUND|AirflowNotFoundException",
        error_class=ErrorClass.missing_airflow_connection,
        transient=False,
        action=Action.notify,
        confidence=0.9,
        root_cause="An Airflow connection the task needs does not exist.",
        fix_step="Create the connection.",
    ),
    Rule(
        id="airflow-variable-missing",
        pattern=r"VARIABLE_NOT_FOUND|Variable .* does not exist",
        error_class=ErrorClass.missing_airflow_variable,
        transient=False,
        action=Action.notify,
        confidence=0.9,
        root_cause="An Airflow Variable the task needs does not exist.",
        fix_step="Create the Variable or give it a default.",
    ),
    Rule(
        id="host-unresolvable-or-unroutable",
        pattern=(
            r"Name or service not known|nodename nor servname|No address associated with hostname|"
            r"failed to resolve sockaddr|could not translate host name .* Name or service|Network is unreachable|"
            r"No route to host"
        ),
        error_class=ErrorClass.connection_misconfigured,
        transient=False,
        action=Action.notify,
        confidence=0.7,
        root_cause=(
            "A host in the connection does not resolve or cannot be routed to: likely a typo, a "
            "placeholder or the wrong network."
        ),
        fix_step="Fix the host in the Airflow connection.",
    ),
    Rule(
        id="tls-certificate-unverified",
        pattern=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|SSLCertVerificationError|WRONG_VERSION_NUMBER",
        error_class=ErrorClass.tls_certificate_error,
        transient=False,
        action=Action.notify,
        confidence=0.85,
        root_cause="The endpoint's TLS certificate or protocol could not be verified.",
        fix_step="Install the CA bundle or fix the endpoint's TLS setup.",
    ),
    # Airflow 3 task code that reaches for the metadata database: fails on every run.
    Rule(
        id="airflow3-orm-access-in-task",
        pattern=r"Direct database access via the ORM is not allowed",
        error_class=ErrorClass.orm_access_forbidden,
        transient=False,
        action=Action.notify,
        confidence=0.9,
        root_cause="Task code used Airflow's ORM, which Airflow 3 forbids in tasks.",
        fix_step="Use the Task SDK or the REST API.",
    ),
    # DockerOperator without the Docker socket: requests reports it as an aborted connection.
    Rule(
        id="docker-socket-missing",
        pattern=r"Connection aborted.{0,20}FileNotFoundError|docker\.sock|Error while fetching server API version",
        error_class=ErrorClass.docker_socket_missing,
        transient=False,
        action=Action.notify,
        confidence=0.85,
        root_cause="The Docker daemon's socket is not available to the worker.",
        fix_step="Mount the Docker socket or use another operator.",
    ),
    # A sensor whose condition never became true: not a network timeout.
    Rule(
        id="sensor-timed-out",
        pattern=r"AirflowSensorTimeout|Sensor has timed out",
        error_class=ErrorClass.sensor_timeout,
        transient=False,
        action=Action.notify,
        confidence=0.7,
        root_cause="The sensor's condition did not become true in time.",
        fix_step="Check what the sensor waits for and its timeout.",
    ),
    # -- quota before throttling -------------------------------------------------------------
    Rule(
        id="api-quota-exhausted",
        pattern=(
            r"quota (?:has been )?(?:exceeded|exhausted)|exceeded your (?:daily|monthly|current)|plan limit|\b402\b|"
            r"insufficient_quota|check your plan and billing|"
            r"Payment Required|usage limit|storage quota"
        ),
        error_class=ErrorClass.api_quota_exhausted,
        transient=False,
        action=Action.notify,
        confidence=0.75,
        root_cause="The API quota or plan limit is exhausted.",
        fix_step="Raise the quota or wait for the window to reset.",
    ),
    # -- the platform, not the code (before generic timeouts) --------------------------------
    # A person or a timeout stopped the task: not a platform hiccup, not retry-safe.
    Rule(
        id="task-sigterm-or-timeout",
        pattern=(
            r"Received SIGTERM|Signals?\.SIGTERM|Task received SIGTERM|marked (?:as )?failed|"
            r"externally set to failed|execution_timeout|AirflowTaskTimeout|Timeout, PID|"
            r"Server indicated the task shouldn't be running anymore|Process terminated by signal\.[^\n]*signal_name=SIGTERM|"
            r"Reason: DeadlineExceeded|activeDeadlineSeconds"
        ),
        error_class=ErrorClass.task_terminated,
        transient=False,
        action=Action.notify,
        confidence=0.6,
        root_cause="The task was stopped from outside (SIGTERM, a timeout, or a person marking it failed).",
        fix_step="Find who or what stopped it: execution_timeout, a person, or the platform.",
    ),
    Rule(
        id="worker-lost-or-zombie",
        pattern=(
            r"zombie|heartbeat (?:got an exception|timed? ?out|timeout|expired|missed|failed)|did not emit heartbeat|"
            r"(?:no|missed|stale|without an?) heartbeats?\b|has not heartbeat|heartbeat.{0,30}(?:exceeded|older than)|"
            r"was the task killed externally|killed externally|finished (?:\(failed\)|with state "
            r"failed),? (?:although|but) the task|state attribute is queued|Failed to fetch log file from worker|"
            r"worker .{0,40}(?:evicted|lost|finished abnormally)|WorkerLostError|Worker exited prematurely|"
            r"preempted|spot (?:instance|node) .{0,40}(?:interrupt|reclaim)|node .{0,30}(?:shutdown|was deleted)|"
            r"\bEvicted\b|was evicted|Log file (?:is not found|does not exist)|Failed to fetch log file"
        ),
        error_class=ErrorClass.worker_lost,
        transient=True,
        action=Action.retry,
        confidence=0.8,
        root_cause="The task's worker or pod was lost, not its code.",
        fix_step="Retry; check worker health if it recurs.",
    ),
    # The KubernetesPodOperator's pod stayed Pending past startup_timeout_seconds (cncf.kubernetes
    # pod_manager's PodLaunchTimeoutException): a node pool still scaling up or a slow image pull, or a
    # pod no node can ever take (requests above any node, an image that does not exist): disputed.
    Rule(
        id="kubernetes-pod-start-timeout",
        pattern=r"Pod took too long to start|PodLaunchTimeoutException",
        error_class=ErrorClass.pod_start_timeout,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.6,
        root_cause="The task's pod stayed Pending longer than the operator's startup timeout.",
        fix_step="Retry with backoff; if it recurs, read the pod's events (FailedScheduling, ErrImagePull).",
    ),
    # -- transient ---------------------------------------------------------------------------
    Rule(
        id="db-deadlock",
        pattern=r"deadlock detected|Deadlock found|DeadlockDetected|chosen as the deadlock victim",
        error_class=ErrorClass.db_deadlock,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.85,
        root_cause="Two transactions deadlocked; the database aborted this one.",
        fix_step="Retry; order writes consistently.",
    ),
    Rule(
        id="lock-wait-timeout",
        pattern=(
            r"Lock wait timeout|LockNotAvailable|could not obtain lock|Unable to acquire lock|lock timeout|"
            r"database is locked|lock is (?:already )?held"
        ),
        error_class=ErrorClass.lock_contention,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.8,
        root_cause="Another process held a lock the task needed.",
        fix_step="Retry later; find the long-running lock holder.",
    ),
    Rule(
        id="db-serialization-failure-40001",
        pattern=r"SerializationFailure|could not serialize access|conflict with recovery",
        error_class=ErrorClass.db_serialization_failure,
        transient=True,
        action=Action.retry,
        confidence=0.85,
        root_cause="A serializable transaction conflicted with a concurrent one.",
        fix_step="Retry.",
    ),
    # Google APIs' ABORTED (Spanner, Datastore, Firestore: "Transaction was aborted"): a concurrency
    # conflict the API design guide says to retry at a higher level, i.e. the whole transaction.
    Rule(
        id="google-transaction-aborted",
        pattern=r"google\.api_core\.exceptions\.Aborted\b|StatusCode\.ABORTED\b|Transaction was aborted",
        error_class=ErrorClass.db_serialization_failure,
        transient=True,
        action=Action.retry,
        confidence=0.8,
        root_cause="A transaction was aborted because it conflicted with a concurrent one.",
        fix_step="Retry the transaction.",
    ),
    # A query cancelled at its own time limit (PostgreSQL statement_timeout, SQLSTATE 57014; Snowflake
    # 000625 STATEMENT_TIMEOUT_IN_SECONDS; MySQL max_execution_time 3024): the same query is as slow
    # next time. Before the network timeouts, whose "timeout" it also says.
    Rule(
        id="db-statement-timeout",
        pattern=(
            r"canceling statement due to statement timeout|reached its statement or warehouse timeout|"
            r"maximum statement execution time exceeded|Query execution was interrupted, maximum statement"
        ),
        error_class=ErrorClass.statement_timeout,
        transient=False,
        action=Action.notify,
        confidence=0.75,
        root_cause="The database cancelled the query at its statement time limit: the query is too slow for the limit.",
        fix_step="Make the query faster (filters, indexes, a bigger warehouse) or raise the statement timeout.",
    ),
    Rule(
        id="db-connection-slots-exhausted",
        pattern=r"too many clients|too many connections|remaining connection slots|no more connections allowed",
        error_class=ErrorClass.db_connection_limit,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.8,
        root_cause="The database had no free connection slots.",
        fix_step="Retry; limit concurrency with an Airflow pool.",
    ),
    Rule(
        id="db-failover-or-restart",
        pattern=(
            r"the database system is (?:starting up|shutting down|in recovery mode)|recovery is in progress|"
            r"cannot connect to server|server login has been failing|query_wait_timeout|"
            r"pgbouncer cannot connect|server conn crashed|BusyLoadingError|loading the dataset in memory|"
            r"NotPrimaryError|NotMasterError|PrimarySteppedDown|InterruptedAtShutdown"
        ),
        error_class=ErrorClass.db_failover,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.8,
        root_cause="The database was restarting or failing over.",
        fix_step="Retry after the failover; check the database's status.",
    ),
    Rule(
        id="db-connection-dropped",
        pattern=(
            r"server closed the connection unexpectedly|Lost connection to .*server|server has gone away|"
            r"connection already closed|terminating connection due to administrator command|"
            r"SSL SYSCALL error: EOF|SSL connection has been closed unexpectedly|"
            r"Can't reconnect until invalid transaction is rolled back|connection was closed in the middle|"
            r"ORA-0311[34]|ORA-03135|end-of-file on communication channel|\b08S01\b|Communication link failure|"
            r"AutoReconnect|DBPROCESS is dead|DB-Lib error message 20047"
        ),
        error_class=ErrorClass.db_connection_lost,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.8,
        root_cause="The database dropped the connection.",
        fix_step="Retry; enable pool_pre_ping or keepalives.",
    ),
    # EAI_AGAIN: the resolver itself says the failure is temporary.
    Rule(
        id="dns-temporary-failure-eai-again",
        pattern=r"Temporary failure in name resolution|EAI_AGAIN",
        error_class=ErrorClass.dns_resolution_failure,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.85,
        root_cause="The resolver could not resolve a host name for a moment.",
        fix_step="Retry; check the worker's DNS if it persists.",
    ),
    Rule(
        id="dns-resolution-failed",
        pattern=r"NameResolutionError|getaddrinfo failed|Could not connect to the endpoint URL|Failed to resolve",
        error_class=ErrorClass.dns_resolution_failure,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.75,
        root_cause="A host name could not be resolved for a moment.",
        fix_step="Retry; check the worker's DNS if it persists.",
    ),
    Rule(
        id="connection-refused",
        pattern=(
            r"connection refused|ConnectionRefusedError|ECONNREFUSED|actively refused|Errno 111|Connect call failed|"
            r"Can't connect to (?:MySQL |MariaDB )?server on [^\n]{0,80}\((?:111|10061)\)|ORA-12541|TNS:no listener"
        ),
        error_class=ErrorClass.connection_refused,
        transient=True,
        action=Action.retry,
        confidence=0.8,
        root_cause="The remote service refused the connection: it was down or restarting.",
        fix_step="Check that the service is up and listening; check the connection's host and port if it persists.",
    ),
    Rule(
        id="connection-reset",
        pattern=(
            r"Connection reset|ConnectionResetError|RemoteDisconnected|Remote end closed connection|Broken pipe|"
            r"BrokenPipeError|Connection aborted|IncompleteRead|ChunkedEncodingError|Response ended prematurely|"
            r"InvalidChunkLength|Connection broken|ServerDisconnectedError|ClientConnectionError|"
            r"ClientConnectorError|Cannot connect to host|RemoteProtocolError|Server disconnected|"
            r"SMTPServerDisconnected|Connection unexpectedly closed|Error reading SSH protocol banner|"
            r"No existing session|SSH session not active|Server connection dropped|"
            r"TCP Provider: Error code 0x68\b|ConnectionAbortedError|Software caused connection abort|"
            r"\bBrokenPipe:|server socket closed"
        ),
        error_class=ErrorClass.connection_reset_by_remote,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.8,
        root_cause="The remote end closed the connection mid-request.",
        fix_step="Retry; check proxies and keep-alive settings.",
    ),
    Rule(
        id="tls-connection-dropped",
        pattern=(
            r"EOF occurred in violation of protocol|SSLEOFError|SSLZeroReturnError|TLS/SSL connection has been closed|"
            r"UNEXPECTED_EOF_WHILE_READING|DECRYPTION_FAILED_OR_BAD_RECORD_MAC|bad record mac"
        ),
        error_class=ErrorClass.ssl_eof_error,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.8,
        root_cause="The TLS connection dropped.",
        fix_step="Retry; check the endpoint's TLS health if it persists.",
    ),
    # The Docker daemon answers 500 for a container it cannot create as asked (a missing bind
    # source, an invalid option): its quoted reason is the error, and it recurs.
    Rule(
        id="docker-container-config-rejected",
        pattern=(
            r"(?:docker\.errors\.APIError|http\+docker://).{0,300}(?:does not exist|invalid|no such|not found|"
            r"conflict|is not a valid)"
        ),
        error_class=ErrorClass.container_config_error,
        transient=False,
        action=Action.notify,
        confidence=0.8,
        root_cause="Docker refused to create or start the container as configured.",
        fix_step="Fix the operator's image, mounts or options.",
    ),
    # A request the server rejected as malformed (RFC 9110 15.5: 400, 405, 406, 410, 411, 413, 414,
    # 415, 422), in requests' (`422 Client Error: Unprocessable Entity`), HttpHook's (`400:Bad Request`)
    # and a status line's (`HTTP/1.1 400`) words: the same request is rejected again. Not 404 (the
    # disputed missing object), 401/403 (the credential rules), 408, 409, 425 or 429 (which a repeat
    # may pass). Before the 5xx rule: a rejected request's quoted body may say "503".
    Rule(
        id="http-4xx-request-rejected",
        pattern=(
            r"\b(?:400|405|406|410|411|413|414|415|422) Client Error\b|"
            r"\b(?:400|405|406|410|411|413|414|415|422):\s?(?:Bad Request|Method Not Allowed|Not Acceptable|Gone|"
            r"Length Required|Payload Too Large|Content Too Large|URI Too Long|Unsupported Media Type|"
            r"Unprocessable (?:Entity|Content))\b|"
            r"HTTP/[\d.]+ (?:400|405|406|410|411|413|414|415|422)\b"
        ),
        error_class=ErrorClass.http_request_rejected,
        transient=False,
        action=Action.notify,
        confidence=0.8,
        root_cause="The service rejected the request as malformed or unacceptable (an HTTP 4xx client error).",
        fix_step="Fix the request the task sends (its payload, parameters or endpoint).",
    ),
    # AWS's InternalError/InternalFailure *codes* ("An error occurred (InternalError)"), not the DB-API
    # exception class InternalError (PEP 249), which drivers raise for unknown columns, unknown
    # databases and aborted transactions.
    Rule(
        id="http-5xx",
        pattern=(
            r"\b(?:500|502|503|504)\b.{0,40}(?:Server Error|Bad Gateway|Service Unavailable|Gateway Time|"
            r"Internal Server Error)|Service Unavailable|Bad Gateway|Gateway Timeout|backendError|InternalServerError|"
            r"ServiceUnavailable|\[50[0234]\]|\b50[234]\s*:|too many 50[0234] error|(?<!Resource )temporarily unavailable|"
            r"currently unavailable|\((?:InternalError|InternalFailure)\)|Internal error encountered|status code'?,?\s*50[0234]\b|"
            r"HTTP(?:/[\d.]+)? 50[0234]\b|StatusCode\.UNAVAILABLE(?![^\n]{0,200}failed to connect)|"
            r"HttpError: [^\n,]{1,80}, 50[0234]\b"
        ),
        error_class=ErrorClass.http_5xx_server_error,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.8,
        root_cause="The upstream service answered 5xx: it was unavailable.",
        fix_step="Retry with backoff; check the provider's status.",
    ),
    # A service's own back-pressure code (S3 "SlowDown ... reduce your request rate", AWS
    # "Throttling"/"Rate exceeded"/"RequestLimitExceeded"): a request-rate signal by definition; an
    # exhausted plan quota has its own codes (the quota rule above).
    Rule(
        id="service-throttling",
        pattern=(
            r"SlowDown|reduce your request rate|Throttl|Rate exceeded|RequestLimitExceeded|REQUEST_LIMIT_EXCEEDED|"
            r"ProvisionedThroughputExceeded|ServerBusy|server is busy"
        ),
        error_class=ErrorClass.rate_limited,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.85,
        root_cause="The service throttled the client's request rate.",
        fix_step="Retry with backoff; lower concurrency.",
    ),
    Rule(
        id="kafka-brokers-unavailable",
        pattern=(
            r"NoBrokersAvailable|Broker transport failure|broker.*(?:unavailable|not available)|"
            r"All broker connections are down"
        ),
        error_class=ErrorClass.kafka_broker_unavailable,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.75,
        root_cause="The message brokers were unreachable.",
        fix_step="Retry after the brokers are back; check bootstrap servers.",
    ),
    # Selenium Grid 4's session queue (LocalNewSessionQueue) answers "New session request timed out"
    # when no node slot freed up within its session-request-timeout; Grid 3 said "timed out waiting
    # for a node to become available": busy browsers, not a slow network.
    Rule(
        id="remote-capacity-exhausted",
        pattern=(
            r"New session request timed out|timed out waiting for a node to become available|"
            r"INSUFFICIENT_INSTANCE_CAPACITY|InsufficientInstanceCapacity|InsufficientCapacity|"
            r"ZONE_RESOURCE_POOL_EXHAUSTED|capacity is (?:currently )?unavailable|no capacity|"
            r"no free .* slot|SpotMaxPriceTooLow|insufficient capacity|does not have enough resources available|"
            r"NO_NODES_AVAILABLE|No nodes available to run query"
        ),
        error_class=ErrorClass.remote_capacity_unavailable,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.8,
        root_cause="The remote compute had no capacity.",
        fix_step="Retry later; raise the remote pool's capacity.",
    ),
    # A bare 429 or RESOURCE_EXHAUSTED is also what an exhausted quota answers.
    Rule(
        id="http-429-rate-limit",
        pattern=r"\b429\b|Too Many Requests|rate limit|TooManyRequests|RESOURCE_EXHAUSTED",
        error_class=ErrorClass.rate_limited,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.75,
        root_cause="The API throttled the client.",
        fix_step="Retry with backoff; lower concurrency.",
    ),
    # A read timeout: the service accepted the connection and the request, then answered too slowly,
    # so the address is right (the wrong-address and firewall look-alikes time out connecting).
    Rule(
        id="read-timeout",
        pattern=r"Read timed out|ReadTimeout|Timeout reading from socket|read timeout|timed out while reading",
        error_class=ErrorClass.network_timeout,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.8,
        root_cause="The service accepted the call but did not answer in time.",
        fix_step="Retry; check the service's latency.",
    ),
    Rule(
        id="network-timeout",
        pattern=r"timed? ?out|TimeoutError|ReadTimeout|ConnectTimeout|deadline exceeded|DeadlineExceeded",
        error_class=ErrorClass.network_timeout,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.75,
        root_cause="A call timed out waiting for a remote service.",
        fix_step="Retry; check the remote service's latency.",
    ),
    # snowflake-connector-python (network.py) raises this only when its own retry loop, which
    # retries connection errors, timeouts and 5xx, ran out: the connector already judged it retryable.
    # 250003 "Failed to get the response. Hanging?": no answer after the same retry loop.
    Rule(
        id="snowflake-client-gave-up",
        pattern=r"Could not connect to Snowflake backend after \d+ attempt|Failed to get the response\. Hanging\?",
        error_class=ErrorClass.service_unreachable,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.8,
        root_cause="A managed service's client gave up after its own retries of a network error.",
        fix_step="Retry with backoff; check the provider's status and the worker's network if it persists.",
    ),
    Rule(
        id="could-not-connect",
        pattern=(
            r"Could not connect to .{0,60}(?:backend|server)|Failed to connect to|Unable to connect to|"
            r"could not connect to server"
        ),
        error_class=ErrorClass.connection_refused,
        transient=True,
        action=Action.retry_with_backoff,
        confidence=0.7,
        root_cause="The service could not be reached.",
        fix_step="Retry; check the service and the connection if it persists.",
    ),
    # -- code, data, templates ---------------------------------------------------------------
    Rule(
        id="python-module-missing",
        pattern=r"ModuleNotFoundError|No module named|cannot import name|ImportError",
        error_class=ErrorClass.module_not_found,
        transient=False,
        action=Action.notify,
        confidence=0.9,
        root_cause="A Python module the task imports is missing or incompatible.",
        fix_step="Pin the package in requirements.txt.",
    ),
    Rule(
        id="jinja-template-not-found",
        pattern=r"TemplateNotFound",
        error_class=ErrorClass.template_not_found,
        transient=False,
        action=Action.notify,
        confidence=0.9,
        root_cause="A Jinja template file was not found.",
        fix_step="Fix the template path or template_searchpath.",
    ),
    Rule(
        id="jinja-template-error",
        pattern=r"UndefinedError|TemplateSyntaxError|is undefined",
        error_class=ErrorClass.jinja_template_error,
        transient=False,
        action=Action.notify,
        confidence=0.85,
        root_cause="A Jinja template could not be rendered.",
        fix_step="Fix the template.",
    ),
    Rule(
        id="executable-not-found",
        pattern=r"command not found|executable file not found|No such file or directory: '[\w.-]+'$",
        error_class=ErrorClass.executable_not_found,
        transient=False,
        action=Action.notify,
        confidence=0.8,
        root_cause="A command is not installed on the worker.",
        fix_step="Install it in the image.",
    ),
    Rule(
        id="syntax-error",
        pattern=r"syntax error|SyntaxError|SQL compilation error|ParseException",
        error_class=ErrorClass.sql_syntax_error,
        transient=False,
        action=Action.notify,
        confidence=0.8,
        root_cause="The SQL or code has a syntax error.",
        fix_step="Fix the statement.",
    ),
    Rule(
        id="constraint-violation",
        pattern=(
            r"duplicate key|UniqueViolation|IntegrityError|NotNullViolation|ForeignKeyViolation|CheckViolation|"
            r"already exists|violates (?:check|not-null|foreign key|exclusion) constraint"
        ),
        error_class=ErrorClass.duplicate_key_violation,
        transient=False,
        action=Action.notify,
        confidence=0.8,
        root_cause="A write violated a constraint.",
        fix_step="Make the load idempotent.",
    ),
    Rule(
        id="data-type-conversion",
        pattern=(
            r"invalid input syntax|out of range|Numeric value .* is not recognized|could not convert|"
            r"invalid literal|Cannot convert|InvalidTextRepresentation|DataError|value too long|"
            r"Incorrect \w+ value|Data truncated for column|\b\d+ validation errors? for \w+"
        ),
        error_class=ErrorClass.data_type_conversion_error,
        transient=False,
        action=Action.notify,
        confidence=0.8,
        root_cause="Data did not fit the expected type.",
        fix_step="Clean or cast the data.",
    ),
    Rule(
        id="data-parse-error",
        pattern=(
            r"JSONDecodeError|ParserError|Error tokenizing|Expecting (?:value|property name)|BadGzipFile|BadZipFile|"
            r"Compressed file ended|corrupt"
        ),
        error_class=ErrorClass.data_parse_error,
        transient=False,
        action=Action.notify,
        confidence=0.8,
        root_cause="Input data could not be parsed.",
        fix_step="Fix or quarantine the malformed input.",
    ),
    Rule(
        id="object-not-found",
        pattern=(
            r"does not exist|UndefinedTable|UndefinedColumn|not found|NoSuchKey|NotFound|Unrecognized name|"
            r"Unknown (?:table|column|database)|FileNotFoundError|No such file|\b404\b"
        ),
        error_class=ErrorClass.missing_object,
        transient=False,
        action=Action.notify,
        confidence=0.75,
        root_cause="A table, column, file or key the task needs does not exist.",
        fix_step="Create it or fix the name the task uses.",
    ),
    Rule(
        id="python-code-error",
        pattern=(
            r"^(?:KeyError|IndexError|AttributeError|TypeError|ValueError|NameError|ZeroDivisionError|AssertionError|"
            r"UnboundLocalError|RecursionError|NotImplementedError|StopIteration)\b"
        ),
        error_class=ErrorClass.task_code_error,
        transient=False,
        action=Action.notify,
        confidence=0.8,
        root_cause="The task's own code raised an error on its input.",
        fix_step="Read the traceback; fix the task code or input.",
    ),
    Rule(
        id="data-quality-check-failed",
        pattern=r"Test failed|test failure|Failure in test|expectation|Validation failed|data quality",
        error_class=ErrorClass.data_quality_check_failed,
        transient=False,
        action=Action.notify,
        confidence=0.75,
        root_cause="A data-quality check failed.",
        fix_step="Inspect the failing rows.",
    ),
)

GENERIC_CODE_ERROR = ErrorClass.task_code_error

# A line inside a message that reads like another exception (`ConnectionResetError: ...`): in a real
# exception it is a quoted cause at best; in a forged one it is bait. It may support a permanent
# reading, never a transient one.
_EMBEDDED_EXCEPTION = re.compile(r"^\s*((?:[A-Za-z_]\w*\.)*[A-Z]\w*)\s*(?::|$)")
# Exceptions whose message is data (a key, an attribute, an operand): it never says a retry would help.
_CODE_ERROR_TYPES = frozenset(
    {
        "KeyError", "IndexError", "AttributeError", "TypeError", "NameError", "ZeroDivisionError",
        "AssertionError", "UnboundLocalError", "RecursionError", "NotImplementedError", "StopIteration",
        "SyntaxError", "ImportError", "ModuleNotFoundError", "UndefinedError", "TemplateSyntaxError",
        # data that could not be read or did not validate: the input, not the network, is at fault
        "ParserError", "EmptyDataError", "JSONDecodeError", "UnicodeDecodeError", "UnicodeEncodeError",
        "ValidationError",
        # conversion and parse errors whose message quotes the value they could not read (Python's
        # decimal, pyarrow, pandas, PEP 249 DataError and PostgreSQL's SQLSTATE class 22 errors)
        "DataError", "InvalidOperation", "ArrowInvalid", "ArrowTypeError", "OutOfBoundsDatetime",
        "InvalidTextRepresentation", "NumericValueOutOfRange", "InvalidDatetimeFormat", "DatetimeFieldOverflow",
        "StringDataRightTruncation", "CharacterNotInRepertoire", "UnicodeError",
        # constraint violations (PEP 249 IntegrityError, PostgreSQL's SQLSTATE class 23): the data broke
        # a rule of the table, whatever words its DETAIL line quotes from the row
        "IntegrityError", "UniqueViolation", "ForeignKeyViolation", "NotNullViolation", "CheckViolation",
        "ExclusionViolation", "RestrictViolation",
        # the identity was refused, or has no right to do it
        "InsufficientPrivilege", "AuthenticationException", "AuthenticationError", "AuthenticationFailed",
        "ClientAuthenticationError", "NoCredentialsError", "DefaultCredentialsError", "PermissionError",
        # a path that is not there, or not a file
        "FileNotFoundError", "IsADirectoryError", "NotADirectoryError",
    }
)  # fmt: skip
# Exceptions whose type settles the class as permanent: a transient rule is never read in their message
# (issue #23 item 3, "The error is the error"): a KeyError whose key reads "503 Service Unavailable",
# a UniqueViolation whose DETAIL line quotes "connection reset", a pydantic ValidationError of an
# input that read "Gateway Timeout" are still what their type says.
PERMANENT_TYPES = _CODE_ERROR_TYPES


def _trusted(subject: str) -> str:
    """`subject` without its continuation lines that read like another exception's line."""
    head, *rest = subject.split("\n")

    def embedded(line: str) -> bool:
        m = _EMBEDDED_EXCEPTION.match(line)
        return bool(m) and is_exception_type(m.group(1))

    return "\n".join([head, *(line for line in rest if not embedded(line))])


# Inside a container (Astro, Kubernetes, Docker Compose) localhost is the container itself: a
# connection refused there is the most common Airflow misconfiguration, not a restart. Checked
# unless the settings say local services are real (`DoctorSettings.local_services`).
_LOCALHOST = r"(?:localhost|127\.0\.0\.\d+|\[?::1\]?|0\.0\.0\.0)"
LOCALHOST_REFUSED = Rule(
    id="localhost-refused-in-container",
    pattern=re.compile(
        rf"(?:host=['\"]?{_LOCALHOST}\b|server at \"{_LOCALHOST}\"|(?:to|connect to|at) {_LOCALHOST}\b)"
        r"[^\n]{0,300}?(?:refused|Connect call failed|Errno 111|Failed to establish a new connection)",
        re.I,
    ),
    error_class=ErrorClass.connection_refused_localhost,
    transient=False,
    action=Action.notify,
    confidence=0.75,
    root_cause=(
        "A connection to localhost was refused: inside a container, localhost is the container itself, "
        "so the service is not where the connection points."
    ),
    fix_step=(
        "Point the Airflow connection at the service's host name on the container network "
        "(not localhost), or start the service."
    ),
)


# The failing call's target is localhost (a URL, a host= argument, a libpq "server at").
_LOCALHOST_TARGET = re.compile(
    rf"(?:https?://{_LOCALHOST}[:/]|host=['\"]?{_LOCALHOST}\b|server at \"{_LOCALHOST}\")", re.I
)


# A Kubernetes ResourceQuota refusal (the API server's admission message): `exceeded quota: <name>,
# requested: cpu=2,memory=4Gi, used: cpu=10,memory=8Gi, limited: cpu=10,memory=16Gi`.
_K8S_QUOTA = re.compile(
    r"exceeded quota: [\w.-]+, requested: (?P<requested>[^\s,]+(?:,[^\s,]+)*), "
    r"used: (?P<used>[^\s,]+(?:,[^\s,]+)*), limited: (?P<limited>[^\s,'\"]+(?:,[^\s,'\"]+)*)"
)
# Kubernetes quantity suffixes (apimachinery resource.Quantity): decimal SI and binary.
_QUANTITY_SUFFIX = {
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
K8S_QUOTA_IN_USE = Rule(
    id="kubernetes-quota-in-use",
    pattern=_K8S_QUOTA,
    error_class=ErrorClass.remote_capacity_unavailable,
    transient=True,
    action=Action.retry_with_backoff,
    confidence=0.8,
    root_cause="The namespace's ResourceQuota was used up by other pods: the pod fits the quota once they finish.",
    fix_step="Retry later; raise the quota or lower the DAG's concurrency if it recurs.",
)
K8S_QUOTA_TOO_SMALL = Rule(
    id="kubernetes-quota-too-small",
    pattern=_K8S_QUOTA,
    error_class=ErrorClass.resource_quota_too_small,
    transient=False,
    action=Action.notify,
    confidence=0.9,
    root_cause="The pod requests more than the namespace's ResourceQuota allows at all: no retry can fit it.",
    fix_step="Lower the pod's requests or raise the namespace's ResourceQuota.",
)


def _quantity(text: str) -> float | None:
    m = re.fullmatch(r"([0-9.]+(?:[eE][+-]?\d+)?)([a-zA-Z]{0,2})", text.strip())
    if not m or m.group(2) not in _QUANTITY_SUFFIX:
        return None
    try:
        return float(m.group(1)) * _QUANTITY_SUFFIX[m.group(2)]
    except ValueError:
        return None


def _quantities(text: str) -> dict[str, float]:
    out = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        q = _quantity(value)
        if name and q is not None:
            out[name.strip()] = q
    return out


def k8s_quota_rule(subject: str) -> Rule | None:
    """Read a Kubernetes ResourceQuota refusal: whether the pod could fit the quota at all.

    Returns:
        K8S_QUOTA_IN_USE when every requested resource is within its limit (other pods hold the
        rest: it frees up as they finish), K8S_QUOTA_TOO_SMALL when one exceeds its limit by
        itself, None when the message is not a quota refusal or its quantities cannot be read.
    """
    m = _K8S_QUOTA.search(subject)
    if not m:
        return None
    requested, limited = _quantities(m.group("requested")), _quantities(m.group("limited"))
    if not requested or any(name not in limited for name in requested):
        return None
    return K8S_QUOTA_TOO_SMALL if any(q > limited[n] for n, q in requested.items()) else K8S_QUOTA_IN_USE


def match_rule(
    exception_type: str | None,
    message: str,
    causes: list[str] | None = None,
    *,
    local_services: bool = False,
) -> Rule | None:
    """The first rule matching the primary error; when the primary error matches only the generic
    code-error rule or nothing, a specific rule matching one of its chained causes wins.

    A permanent rule may match anywhere in the message; a transient rule only in the trusted part
    (the first line and continuation lines that do not read like another exception), so a
    multi-line message whose last line looks transient is not read as transient.

    Args:
        exception_type: the primary error's class name, or None.
        message: its message (may span lines).
        causes: the primary error's chained causes as `Type: message`, innermost last (Excerpt.causes).
        local_services: localhost services are real here (see LOCALHOST_REFUSED).
    Returns:
        the matching Rule, or None.
    """
    subject = f"{exception_type}: {message}" if exception_type else message
    if not local_services and LOCALHOST_REFUSED.pattern.search(subject):
        return LOCALHOST_REFUSED
    quota = k8s_quota_rule(_trusted(subject))
    if quota is not None:
        return quota
    primary = _first(subject)
    if primary is not None and primary.error_class != GENERIC_CODE_ERROR:
        return primary
    # A bare ValueError/RuntimeError raised `from` a specific error (network, database, ...): the
    # chained cause says more than the wrapper does.
    for cause in causes or []:
        rule = _first(cause)
        if rule is not None and rule.error_class != GENERIC_CODE_ERROR:
            return rule
    return primary


# Standard ports of the services Airflow tasks connect to (IANA registrations, or the product's
# documented default where IANA has none: Kafka 9092, Elasticsearch 9200, Redshift 5439, the
# Kubernetes API server 6443, Spark's standalone master 7077, HiveServer2 10000, ClickHouse 8123/9000).
DEFAULT_SERVICE_PORTS = frozenset(
    {
        21,
        22,
        25,
        80,
        389,
        443,
        465,
        587,
        636,
        1433,
        1521,
        2181,
        3306,
        5432,
        5439,
        5671,
        5672,
        6379,
        6443,
        7077,
        8123,
        9000,
        9042,
        9092,
        9200,
        10000,
        11211,
        27017,
    }
)
# The address a refused or failed connection was aimed at, as clients print it: urllib3's
# `host='h', port=p`, libpq's `server at "h" (ip), port p`, aiohttp's `Cannot connect to host h:p`,
# asyncio's `Connect call failed ('ip', p)`, redis-py's `connecting to h:p`, a URL's `//h:p`.
_TARGET = re.compile(
    r"host='(?P<h1>[^']+)', port=(?P<p1>\d+)"
    r"|server at \"(?P<h2>[^\"]+)\"(?: \([^)]*\))?, port (?P<p2>\d+)"
    r"|on host \"(?P<h6>[^\"]+)\"[^\n]{0,80}?\s+TCP/IP connections on port (?P<p6>\d+)"
    r"|(?:Cannot connect to host|connecting to) (?P<h3>[\w.<>-]+):(?P<p3>\d+)"
    r"|Connect call failed \('(?P<h4>[^']+)', (?P<p4>\d+)"
    r"|\w+://(?P<h5>[\w.<>-]+):(?P<p5>\d+)"
)
# A refusal there is the service not listening for a moment (restarting, failing over, a pod being
# replaced); the wrong-port look-alike (a host-side published port used inside the container
# network, a typo) uses a port that is not the standard one.
SERVICE_REFUSED_DEFAULT_PORT = Rule(
    id="refused-at-standard-port",
    pattern=_TARGET,
    error_class=ErrorClass.service_unreachable,
    transient=True,
    action=Action.retry_with_backoff,
    confidence=0.8,
    root_cause=(
        "A service refused or failed the connection at its standard port on a remote host: the address is "
        "right, the service was not listening for a moment (restarting, failing over, being replaced)."
    ),
    fix_step="Retry with backoff; check that the service is up if it persists.",
)


# AWS regions (docs.aws.amazon.com "Regions and Zones", GovCloud, China, ISO and the European
# Sovereign Cloud), 2026-12. A region-shaped label of an amazonaws.com host that is not one of them
# is a typo or a placeholder (eu-wst-1, us-east-7): DNS or the connection fails on every try. A region
# opened after this list only loses the retry (escalated), never gains a wrong one.
AWS_REGIONS = frozenset(
    {
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "af-south-1",
        "ap-east-1",
        "ap-east-2",
        "ap-south-1",
        "ap-south-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-6",
        "ap-southeast-7",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ca-central-1",
        "ca-west-1",
        "eu-central-1",
        "eu-central-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "eu-south-1",
        "eu-south-2",
        "eu-north-1",
        "il-central-1",
        "me-south-1",
        "me-central-1",
        "mx-central-1",
        "sa-east-1",
        "us-gov-east-1",
        "us-gov-west-1",
        "cn-north-1",
        "cn-northwest-1",
        "us-iso-east-1",
        "us-iso-west-1",
        "us-isob-east-1",
        "eusc-de-east-1",
    }
)
_REGION_SHAPED = re.compile(r"[a-z]{2,4}(?:-gov|-iso[a-z]?)?-[a-z]{3,12}-\d{1,2}")
_AWS_HOST = re.compile(r"\b((?:[a-z0-9-]+\.)+)amazonaws\.com(?:\.cn)?\b", re.I)
WRONG_AWS_REGION = Rule(
    id="aws-region-does-not-exist",
    pattern=_AWS_HOST,
    error_class=ErrorClass.connection_misconfigured,
    transient=False,
    action=Action.notify,
    confidence=0.85,
    root_cause="The AWS endpoint names a region that does not exist (a typo or a placeholder): it fails on every try.",
    fix_step="Fix the region in the Airflow connection (region_name) or the endpoint URL.",
)
# Network readings a wrong endpoint also produces: DNS, refused, unreachable, timed out.
_NETWORK_CLASSES = frozenset(
    {
        ErrorClass.dns_resolution_failure,
        ErrorClass.service_unreachable,
        ErrorClass.connection_refused,
        ErrorClass.network_timeout,
    }
)


def unknown_aws_region(text: str) -> str | None:
    """The first region-shaped label of an amazonaws.com host in `text` that is no AWS region, or
    None. The first label of a host is a bucket or resource name and is not read (`my-data-1.s3...`);
    a legacy `s3-<region>` label is."""
    for m in _AWS_HOST.finditer(text):
        labels = m.group(1).lower().rstrip(".").split(".")
        for i, label in enumerate(labels):
            if label.startswith("s3-"):
                label = label[3:]
            elif i == 0:
                continue
            if _REGION_SHAPED.fullmatch(label) and label not in AWS_REGIONS:
                return label
    return None


def refused_target(excerpt: dict) -> tuple[str, int] | None:
    """The (host, port) a refused connection was aimed at, from the excerpt's message, then its
    causes, then its context lines (newest first); None when no client printed one."""
    texts = [
        excerpt.get("message") or "",
        *(excerpt.get("causes") or []),
        *reversed(excerpt.get("context") or []),
    ]
    for text in texts:
        m = _TARGET.search(text)
        if m:
            host = next(h for h in m.group("h1", "h2", "h3", "h4", "h5", "h6") if h)
            port = next(p for p in m.group("p1", "p2", "p3", "p4", "p5", "p6") if p)
            return host, int(port)
    return None


# Airflow says why it stops a running try before it sends SIGTERM. Airflow 1.10/2.x's local task job:
# "State of this instance has been externally set to <state>. Terminating instance." (1.10: "Taking
# the poison pill."); Airflow 3's supervisor, when its heartbeat gets 409 not_running: "Server
# indicated the task shouldn't be running anymore. Terminating process" with
# detail={"current_state": <state>}. A state set to none is the scheduler resetting an orphaned try
# (SchedulerJob.adopt_or_reset_orphaned_tasks, after a scheduler restart or an HA failover; both
# versions); failed, success and skipped are a person, the REST API or a DAG run timeout; up_for_retry
# is the scheduler failing the try itself. Only Airflow's own wording counts, and only where the
# primary error already says the try was stopped (a printed line before a code error changes nothing).
_STOPPED_BECAUSE = re.compile(
    r"State of this instance has been externally set to (\w+)\. (?:Terminating instance|Taking the poison pill)|"
    r"Server indicated the task shouldn't be running anymore\. Terminating process[^\n]{0,40}?"
    r"detail=\{[^\n]{0,400}?['\"]current_state['\"]: (?:['\"](\w+)['\"]|(null|None))"
)
_STOPPED = re.compile(r"SIGTERM|Task killed|shouldn't be running anymore|externally set to|Terminating")
TRY_RESET_BY_SCHEDULER = Rule(
    id="airflow-try-reset-by-scheduler",
    pattern=re.compile(r"State of this instance has been externally set to None\b"),
    error_class=ErrorClass.worker_lost,
    transient=True,
    action=Action.retry,
    confidence=0.8,
    root_cause=(
        "The scheduler reset the running try's state to none (orphaned-task adoption after a scheduler "
        "restart or failover) and Airflow stopped it with SIGTERM: the platform lost track of the try, not "
        "its code."
    ),
    fix_step="Retry; check the scheduler's restarts and HA failovers if it recurs.",
)

TRY_SET_FROM_OUTSIDE = Rule(
    id="airflow-try-set-from-outside",
    pattern=re.compile(
        r"externally set to (?:failed|success|skipped)\b|current_state\W{1,4}(?:failed|success|skipped)\b"
    ),
    error_class=ErrorClass.task_terminated,
    transient=False,
    action=Action.notify,
    confidence=0.8,
    root_cause=(
        "A person, the REST API or a DAG run timeout set the running try's state to failed, success or "
        "skipped, and Airflow stopped it: someone decided it should not run on."
    ),
    fix_step="Ask who stopped it (the task instance's audit log) before running it again.",
)


def stopped_because(excerpt: dict) -> str | None:
    """The state Airflow said the try was set to from outside before it stopped it (`None`,
    `failed`, `up_for_retry`, ...; Airflow 3's JSON null reads `None`), from the newest such line
    among the excerpt's context lines and message; None when no such line is there."""
    lines = [*(excerpt.get("context") or []), excerpt.get("message") or ""]
    for line in reversed(lines):
        m = _STOPPED_BECAUSE.search(line)
        if m:
            return m.group(1) or m.group(2) or "None"  # JSON null, Python None
    return None


def classify(excerpt: dict, *, local_services: bool = False) -> Rule | None:
    """`match_rule` on an excerpt (as dict): its primary error and chained causes; for a log without
    a traceback (source `log_line`) also the lines around its error line (`context`).

    Context lines speak only where the error line says little: a permanent rule at least
    VETO_CONFIDENCE sure on any of them wins (the safe direction); otherwise, when the error line
    matches nothing specific, the newest context line a rule recognises does.

    A refused connection is then read by where it was aimed (`refused_target`): localhost is
    LOCALHOST_REFUSED (unless `local_services`, where localhost is a host like any other), a host
    on its protocol's standard port (DEFAULT_SERVICE_PORTS) is SERVICE_REFUSED_DEFAULT_PORT
    (retry-safe), anything else stays `connection_refused`, which only memory or a person can vouch
    for. A SIGTERM that Airflow's local task job or supervisor says follows the scheduler resetting
    the try's state to none is TRY_RESET_BY_SCHEDULER, one after a person or the API set it to
    failed, success or skipped is TRY_SET_FROM_OUTSIDE (`stopped_because`). A network reading (DNS,
    refused, timed out) of a call to an AWS endpoint whose region does not exist is WRONG_AWS_REGION.
    """
    rule = _classify(excerpt, local_services=local_services)
    if (
        rule is not None
        and rule.error_class == ErrorClass.task_terminated
        and _STOPPED.search(excerpt.get("message") or "")
    ):
        # A SIGTERM says only that a signal came; Airflow's line before it says who sent it.
        state = stopped_because(excerpt)
        if state in ("None", "none"):
            return TRY_RESET_BY_SCHEDULER
        if state in ("failed", "success", "skipped"):
            return TRY_SET_FROM_OUTSIDE
    if (
        rule is not None
        and rule.error_class == ErrorClass.connection_refused
        and not local_services
        and _LOCALHOST_TARGET.search(excerpt.get("message") or "")
    ):
        # The refusal was read from a cause or a context line (the message was cut before it), but
        # the call that failed points at localhost: the same misconfiguration LOCALHOST_REFUSED names.
        return LOCALHOST_REFUSED
    if rule is not None and rule.error_class in _NETWORK_CLASSES:
        said = [excerpt.get("message") or "", *(excerpt.get("causes") or [])]
        if any(unknown_aws_region(text) for text in said):
            return WRONG_AWS_REGION
    target = (
        refused_target(excerpt)
        if rule is not None and rule.error_class == ErrorClass.connection_refused
        else None
    )
    if target is not None:
        if not local_services and re.fullmatch(_LOCALHOST, target[0], re.I):
            return LOCALHOST_REFUSED
        if target[1] in DEFAULT_SERVICE_PORTS:
            return SERVICE_REFUSED_DEFAULT_PORT
    return rule


def _classify(excerpt: dict, *, local_services: bool) -> Rule | None:
    rule = match_rule(
        excerpt.get("exception_type"),
        excerpt.get("message") or "",
        excerpt.get("causes"),
        local_services=local_services,
    )
    if excerpt.get("source") not in ("log_line", "cut_off", "audit_log") or not excerpt.get("context"):
        return rule
    # A context line that is a cosmos wrapper of dbt's output speaks with dbt's error, not its progress.
    # The supervisor's own kill (`Process exited ... signal_sent=SIGKILL`, Task SDK supervisor.kill)
    # follows a refused start or a timeout: it is not the kernel's out-of-memory kill.
    lines = [dbt_error(line) or line for line in excerpt["context"] if not _SUPERVISOR_KILL.search(line)]
    around = [match_rule(None, line, local_services=local_services) for line in lines]
    around = [r for r in around if r is not None and r.error_class != GENERIC_CODE_ERROR]
    permanent = [r for r in around if not r.transient and r.confidence >= VETO_CONFIDENCE]
    if permanent and (rule is None or rule.transient):
        return permanent[-1]
    if rule is None or rule.error_class in _UNSPECIFIC:
        return around[-1] if around else rule
    return rule


_SUPERVISOR_KILL = re.compile(r"\bsignal_sent=SIG(?:KILL|TERM|INT)\b")

# Classes that say only that something is missing or broken in the code: a context line may say more.
_UNSPECIFIC = frozenset({GENERIC_CODE_ERROR, ErrorClass.missing_object})


def permanent_causes(
    excerpt: dict, min_confidence: float = VETO_CONFIDENCE, field: str = "causes"
) -> list[Rule]:
    """Permanent rules at least `min_confidence` sure that match one of the excerpt's causes.

    Args:
        excerpt: an excerpt as dict (logs.excerpt_record).
        min_confidence: the least confidence (0-1) of a rule that counts.
        field: which causes: `causes` (the chained exceptions, or the other failures a wrapper's output
            printed) or `raised_from` (the primary error's direct causes, `raise ... from`).
    Returns:
        the rules, in the causes' order; a wrapper's own line (`is_wrapper`) is not read.
    """
    found = []
    for cause in excerpt.get(field) or []:
        name, _, message = cause.partition(": ") if ": " in cause else ("", "", cause)
        if is_wrapper(name or None, message):
            continue  # the wrapper the primary error replaced says only that something failed
        rule = _first(cause)
        if rule is not None and not rule.transient and rule.confidence >= min_confidence:
            found.append(rule)
    return found


def _first(subject: str) -> Rule | None:
    """The first rule of RULES that reads `subject` (`Type: message`): a permanent rule anywhere in it
    (the safe direction), a transient one only in its own words (`own_words` of `_trusted`); for a
    type in PERMANENT_TYPES, permanent rules only."""
    name = subject.split(":", 1)[0].strip().rsplit(".", 1)[-1] if ":" in subject else subject.strip()
    if name in PERMANENT_TYPES:
        # A KeyError whose key reads "503 Service Unavailable" is still a KeyError.
        return next((rule for rule in RULES if not rule.transient and rule.pattern.search(subject)), None)
    own = own_words(_trusted(subject))
    return next((rule for rule in RULES if rule.pattern.search(own if rule.transient else subject)), None)


# A quoted value: '...' or "..." (a bytes, raw or unicode prefix allowed) on one line, not an apostrophe
# inside a word (`Can't`, `server's`), and not the argument of a repr'd exception (`Name('...')`).
_QUOTED = re.compile(r"""(?<![\w'"])[bBrRuU]{0,2}(?P<q>['"])(?P<body>[^\n]*?)(?P=q)(?!\w)""")
_REPR_CALL = re.compile(r"([A-Za-z_][\w.]*)\((?:[^()'\"\n]{0,40},\s*)?$")
# A quoted value that is an error's own report, not data: the value of a quoted key of a payload
# (`'message': '...'`, `"reason": "..."`), of a report field (`details = "..."`, `msg=...`), an element
# of an exception's args tuple (`('40001', '[40001] ... deadlocked ...')`, `(1205, 'Lock wait ...')`).
_REPORTED_VALUE = re.compile(
    r"""(?:['"][\w .-]{1,40}['"]\s*:\s*|\b(?:details?|message|msg|errmsg|reason|error|description)\s*[:=]\s*|"""
    r"""\(\s*|\(\s*(?:-?\d{1,6}|'[^'\n]{0,40}'|"[^"\n]{0,40}"),\s*)$"""
)
# A field of a repr'd error object (`KafkaError{code=_TRANSPORT,str="..."}`): its name, then the field.
_ERROR_FIELD = re.compile(r"([A-Za-z_][\w.]*)[({][^(){}\n]*?\b\w+\s*=\s*$")
# A database error's own report lines that quote the statement or the row (PostgreSQL's DETAIL, HINT,
# CONTEXT, QUERY, WHERE, STATEMENT and LINE n lines; SQLAlchemy's [SQL: ...] and [parameters: ...]).
_REPORT_LINE = re.compile(r"(?im)^\s*(?:DETAIL|HINT|CONTEXT|QUERY|WHERE|STATEMENT|LINE \d+):.*$")
_SQL_BLOCK = re.compile(r"\[(?:SQL|parameters): [^\n]*")
# A response body a message quotes after its label: markup up to the line's last `>`.
_BODY_MARKUP = re.compile(r"(?i)\b(?:response|body|content|payload|text)\b[^:=\n]{0,20}[:=]\s*<[^\n]*>")
# A name with underscores (`timeout_seconds`, `connection_reset_count`): a column, field or parameter,
# not a word of the error; the wire codes the transient rules name (`query_wait_timeout`) are kept.
_SNAKE_NAME = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")


def _wire_codes() -> frozenset[str]:
    codes = set()
    for rule in RULES:
        if rule.transient:
            codes.update(re.findall(r"[a-z]+(?:_[a-z]+)+", rule.pattern.pattern))
    return frozenset(codes)


def own_words(subject: str) -> str:
    """The words of an error message that are its own, not data it quotes (issue #23 item 3).

    Removed: quoted values (`'503 Service Unavailable'`, `"timed out"`, `input_value='Gateway Timeout'`),
    except what reports the error itself: the message or a field of a repr'd exception
    (`NewConnectionError('... Connection refused')`, `KafkaError{str="..."}`, whose type
    `is_exception_type`), the value of a quoted key of a payload (`'message': '...'`) or of a report
    field (`details = "..."`), an element of an exception's args tuple (`(1205, '...')`) and a quoted
    HTTP status line (httpx: `"HTTP/1.1 403 Forbidden"`); a database error's DETAIL / HINT / CONTEXT / QUERY / WHERE /
    STATEMENT / LINE n lines and SQLAlchemy's [SQL: ...] / [parameters: ...]; markup of a labelled
    response body (`body: <html>...</html>`); names with underscores (`timeout_seconds`) other than the
    wire codes a transient rule names. Each removal leaves one space, so words do not join.

    Args:
        subject: `Type: message`, any length (callers bound it: logs.excerpt.MAX_FIELD_CHARS).
    Returns:
        the subject without those parts; what a transient rule may read.
    """
    text = _REPORT_LINE.sub(" ", subject)
    text = _SQL_BLOCK.sub(" ", text)
    text = _BODY_MARKUP.sub(" ", text)

    def unquote(m: re.Match) -> str:
        before = text[max(0, m.start() - 120) : m.start()]
        call = _REPR_CALL.search(before) or _ERROR_FIELD.search(before)
        if (
            (call and is_exception_type(call.group(1)))
            or _REPORTED_VALUE.search(before)
            or m.group("body").startswith("HTTP/")
        ):
            return m.group(0)
        return " "

    text = _QUOTED.sub(unquote, text)
    return _SNAKE_NAME.sub(lambda m: m.group(0) if m.group(0) in _WIRE_CODES else " ", text)


_WIRE_CODES = _wire_codes()

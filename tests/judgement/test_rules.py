"""The offline rules: each retry-safe class and its permanent look-alike read from a realistic line,
and the readings that need more than the error line (a cosmos wrapper of dbt's output, the task
supervisor's own kill, a localhost target whose refusal sits in a cause).

The lines are written for these tests from the libraries' documented messages, not taken from any
corpus.
"""

from __future__ import annotations

import pytest

from airflow_doctor.judgement.catalogue import is_retry_safe
from airflow_doctor.judgement.rules import classify, match_rule
from airflow_doctor.logs.excerpt import dbt_error, excerpt_record, extract_excerpt


@pytest.mark.parametrize(
    ("subject", "error_class"),
    [
        # -- retry-safe classes ----------------------------------------------------------------
        ("psycopg2.OperationalError: server closed the connection unexpectedly", "db_connection_lost"),
        ("psycopg2.OperationalError: FATAL:  the database system is starting up", "db_failover"),
        (
            "psycopg2.errors.SerializationFailure: could not serialize access due to concurrent update",
            "db_serialization_failure",
        ),
        (
            "pymysql.err.OperationalError: (1205, 'Lock wait timeout exceeded; try restarting transaction')",
            "lock_contention",
        ),
        ("psycopg2.OperationalError: FATAL:  sorry, too many clients already", "db_connection_limit"),
        (
            "requests.exceptions.ConnectionError: ('Connection aborted.', "
            "RemoteDisconnected('Remote end closed connection without response'))",
            "connection_reset_by_remote",
        ),
        (
            "requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='api.example.com', port=443): "
            "Read timed out. (read timeout=30)",
            "network_timeout",
        ),
        (
            "requests.exceptions.HTTPError: 503 Server Error: Service Unavailable for url: "
            "https://api.example.com/v1/items",
            "http_5xx_server_error",
        ),
        (
            "botocore.exceptions.ClientError: An error occurred (SlowDown) when calling the PutObject "
            "operation: Please reduce your request rate.",
            "rate_limited",
        ),
        (
            "botocore.exceptions.ClientError: An error occurred (ThrottlingException) when calling the "
            "DescribeJobs operation: Rate exceeded",
            "rate_limited",
        ),
        ("kafka.errors.NoBrokersAvailable: NoBrokersAvailable", "kafka_broker_unavailable"),
        (
            "botocore.exceptions.ClientError: An error occurred (InsufficientInstanceCapacity) when calling "
            "the RunInstances operation: We currently do not have sufficient capacity",
            "remote_capacity_unavailable",
        ),
        (
            "airflow.exceptions.AirflowException: Pod etl-load-7f3a returned a failure. Reason: Evicted",
            "worker_lost",
        ),
        (
            "HTTP Request: PATCH http://airflow-api:8080/execution/task-instances/0190aa00-0000-7000-8000-"
            '000000000001/run "HTTP/1.1 409 Conflict"',
            "execution_api_race",
        ),
        (
            "google.api_core.exceptions.Forbidden: 403 Exceeded rate limits: too many table update "
            "operations for this table",
            "rate_limited",
        ),
        (
            "botocore.exceptions.ClientError: An error occurred (ProvisionedThroughputExceededException) "
            "when calling the PutItem operation",
            "rate_limited",
        ),
        ("azure.core.exceptions.HttpResponseError: (ServerBusy) The server is busy.", "rate_limited"),
        (
            "httpx.RemoteProtocolError: Server disconnected without sending a response.",
            "connection_reset_by_remote",
        ),
        ("smtplib.SMTPServerDisconnected: Connection unexpectedly closed", "connection_reset_by_remote"),
        (
            "google.resumable_media.common.InvalidResponse: ('Request failed with status code', 503, "
            "'Expected one of', <HTTPStatus.OK: 200>)",
            "http_5xx_server_error",
        ),
        (
            "grpc._channel._InactiveRpcError: <_InactiveRpcError of RPC that terminated with: "
            'status = StatusCode.UNAVAILABLE details = "Socket closed">',
            "http_5xx_server_error",
        ),
        ("redis.exceptions.BusyLoadingError: Redis is loading the dataset in memory", "db_failover"),
        (
            "psycopg2.errors.QueryCanceled: canceling statement due to conflict with recovery",
            "db_serialization_failure",
        ),
        (
            "pyodbc.Error: ('40001', '[40001] [SQL Server]Transaction (Process ID 57) was deadlocked on lock "
            "resources with another process and has been chosen as the deadlock victim. Rerun the transaction.')",
            "db_deadlock",
        ),
        ("cx_Oracle.DatabaseError: ORA-03113: end-of-file on communication channel", "db_connection_lost"),
        (
            "pyodbc.OperationalError: ('08S01', '[08S01] [ODBC Driver 18 for SQL Server]Communication link failure')",
            "db_connection_lost",
        ),
        ("pymongo.errors.AutoReconnect: connection closed", "db_connection_lost"),
        ("pymongo.errors.NotPrimaryError: not primary", "db_failover"),
        (
            "paramiko.ssh_exception.SSHException: Error reading SSH protocol banner",
            "connection_reset_by_remote",
        ),
        (
            "ssl.SSLError: [SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC] decryption failed or bad record mac",
            "ssl_eof_error",
        ),
        (
            "botocore.exceptions.ClientError: An error occurred (InternalFailure) when calling the "
            "StartQueryExecution operation",
            "http_5xx_server_error",
        ),
        (
            "google.api_core.exceptions.ResourceExhausted: 429 The zone 'projects/p/zones/europe-west1-b' does "
            "not have enough resources available to fulfill the request.",
            "remote_capacity_unavailable",
        ),
        ("Task instance heartbeat timed out; marking it as failed", "worker_lost"),
        # -- their permanent look-alikes -------------------------------------------------------
        (
            "celery.exceptions.WorkerLostError: Worker exited prematurely: signal 11 (SIGSEGV) Job: 4.",
            "native_crash",
        ),
        (
            "docker.errors.APIError: 500 Server Error for http+docker://localhost/v1.45/containers/create: "
            'Internal Server Error ("invalid mount config for type "bind": bind source path does not exist: /srv/in")',
            "container_config_error",
        ),
        (
            "airflow.exceptions.AirflowException: Pod load-3 returned a failure: Evicted: Pod ephemeral local "
            "storage usage exceeds the total limit of containers 2Gi.",
            "disk_full",
        ),
        # PEP 249's InternalError class is not AWS's InternalError code: drivers raise it for a
        # missing column or database and for bad data.
        ("pymysql.err.InternalError: (1054, \"Unknown column 'total' in 'field list'\")", "missing_object"),
        (
            "pymysql.err.InternalError: (1366, \"Incorrect string value: '\\xF0\\x9F' for column 'note' at row 3\")",
            "data_type_conversion_error",
        ),
        (
            "openai.RateLimitError: Error code: 429 - {'error': {'message': 'You exceeded your current quota, "
            "please check your plan and billing details.', 'type': 'insufficient_quota'}}",
            "api_quota_exhausted",
        ),
        (
            "google.api_core.exceptions.Forbidden: 403 Quota exceeded: Your project exceeded quota for "
            "free query bytes scanned",
            "access_denied",
        ),
        (
            "grpc._channel._InactiveRpcError: <_InactiveRpcError of RPC that terminated with: "
            'status = StatusCode.UNAVAILABLE details = "failed to connect to all addresses">',
            "connection_refused",
        ),
        (
            "airflow.exceptions.AirflowException: Pod etl-1 returned a failure. Reason: DeadlineExceeded",
            "task_terminated",
        ),
        (
            "botocore.exceptions.ClientError: An error occurred (AccessDenied) when calling the GetObject "
            "operation: Access Denied",
            "access_denied",
        ),
        (
            'psycopg2.OperationalError: connection to server at "localhost" (127.0.0.1), port 5432 failed: '
            "Connection refused",
            "connection_refused_localhost",
        ),
        ("kubernetes.client.exceptions.ApiException: (404) Reason: Not Found", "missing_object"),
        ("socket.gaierror: [Errno -2] Name or service not known", "connection_misconfigured"),
        ("OSError: [Errno 28] No space left on device", "disk_full"),
    ],
)
def test_each_class_and_its_look_alike_from_a_real_line(subject, error_class):
    exc, _, msg = subject.partition(": ") if not subject.startswith("HTTP Request") else ("", "", subject)
    rule = match_rule(exc or None, msg)
    assert rule is not None and rule.error_class == error_class
    assert is_retry_safe(rule.error_class) == rule.transient or rule.error_class == "connection_refused"


def test_a_service_s_own_throttle_code_is_surer_than_a_bare_429():
    slow_down = match_rule("ClientError", "An error occurred (SlowDown) when calling the PutObject operation")
    bare = match_rule("HTTPError", "429 Client Error: Too Many Requests for url: https://api.example.com")
    assert slow_down.error_class == bare.error_class == "rate_limited"
    assert slow_down.confidence >= 0.8 > bare.confidence  # a bare 429 is also an exhausted quota's answer


# astronomer-cosmos raises AirflowException with dbt's output lines as a tuple; dbt's progress lines
# (a warning that something was "not found") come before its error, which follows "Encountered an error:".
_COSMOS = (
    "[2026-01-02T03:04:05.000+0000] {{taskinstance.py:3311}} ERROR - Task failed with exception\n"
    "airflow.exceptions.AirflowException: ('dbt command failed. The command returned a non-zero exit "
    "code 2. Details: ', '\\x1b[0m03:01:00  Running with dbt=1.8.0', '\\x1b[0m03:01:01  Warning: the "
    "macro audit_columns was not found in package utils, using the default', '\\x1b[0m03:04:04  "
    "Encountered an error:', {error})\n"
)


def test_a_cosmos_wrapper_is_read_from_dbt_s_error_not_its_progress_lines():
    transient = _COSMOS.format(error="'Runtime Error', \"  Database Error: 503 Service Unavailable\"")
    excerpt = excerpt_record(extract_excerpt(transient))
    assert "503 Service Unavailable" in excerpt["message"] and "audit_columns" not in excerpt["message"]
    assert classify(excerpt).error_class == "http_5xx_server_error"

    permanent = _COSMOS.format(
        error="'Compilation Error', \"  Model 'model.shop.orders' depends on a node named 'customers' "
        'which was not found"'
    )
    rule = classify(excerpt_record(extract_excerpt(permanent)))
    assert rule.error_class == "missing_object" and not rule.transient


def test_dbt_error_is_none_without_the_marker_or_when_dbt_prints_it_on_its_own_lines():
    assert dbt_error("AirflowException: ('dbt command failed', 'Done. PASS=3')") is None
    assert dbt_error("00:20:56  Encountered an error:") is None


_SUPERVISOR_KILL = (
    "HTTP Request: PATCH http://airflow-api:8080/execution/task-instances/0190aa00-0000-7000-8000-"
    '000000000002/run "HTTP/1.1 403 Forbidden"\n'
    "[info] Process exited [supervisor] pid=4242 exit_code=<Negsignal.SIGKILL: -9> signal_sent=SIGKILL\n"
    "ERROR - task start refused\n"
)


def test_the_supervisor_s_own_kill_after_a_refused_start_is_not_an_out_of_memory_kill():
    rule = classify(excerpt_record(extract_excerpt(_SUPERVISOR_KILL)))
    assert rule.error_class == "execution_api_race" and rule.transient
    # The kernel's kill (no signal_sent: the supervisor did not send it) still reads as memory.
    oom = "[warning] Process exited abnormally [supervisor] exit_code=<Negsignal.SIGKILL: -9>\n"
    assert classify(excerpt_record(extract_excerpt(oom + "ERROR - task killed\n"))).error_class == (
        "oom_killed_sigkill"
    )


def test_a_call_to_localhost_refused_in_its_cause_is_a_misconfiguration_inside_a_container():
    excerpt = {
        "exception_type": "warehouse_client.errors.ApiError",
        "message": "GET http://localhost:8080/v1/orders?page=2 gave no answer after 3 attempts",
        "causes": ["ConnectionRefusedError: [Errno 111] Connection refused"],
        "source": "traceback",
        "context": [],
    }
    assert classify(excerpt).error_class == "connection_refused_localhost"
    assert classify(excerpt, local_services=True).error_class == "connection_refused"
    remote = {**excerpt, "message": excerpt["message"].replace("localhost", "orders-api.internal")}
    assert classify(remote).error_class == "connection_refused"


def test_a_word_of_the_platform_s_vocabulary_in_a_message_is_not_the_platform_failing():
    # "heartbeat" in a setting's name, EAGAIN from a local non-blocking call: neither is a lost
    # worker or a 5xx, so neither may vouch for a retry.
    # A parser's or validator's message quotes data: "connection reset" or "rate exceeded" in it is
    # the input's text, not a network event.
    for subject in (
        "ValueError: heartbeat_interval must be a positive number",
        "BlockingIOError: [Errno 11] Resource temporarily unavailable",
        "pandas.errors.ParserError: Error tokenizing data. C error: Expected 3 fields in line 7, saw 4: "
        "'connection reset'",
        "great_expectations.exceptions.ValidationError: expect_column_mean: rate exceeded the bound 0.05",
    ):
        exc, _, msg = subject.partition(": ")
        rule = match_rule(exc, msg)
        assert rule is None or not is_retry_safe(rule.error_class), (subject, rule)


@pytest.mark.parametrize(
    ("cause", "error_class"),
    [
        # the protocol's standard port on a remote host: the address is right, the service was down
        (
            'psycopg2.OperationalError: connection to server at "warehouse-db" (10.1.2.3), port 5432 failed: '
            "Connection refused",
            "service_unreachable",
        ),
        (
            "urllib3.exceptions.MaxRetryError: HTTPSConnectionPool(host='10.9.0.1', port=443): Max retries "
            "exceeded with url: /api/v1/pods (Caused by NewConnectionError('Failed to establish a new "
            "connection: [Errno 111] Connection refused'))",
            "service_unreachable",
        ),
        (
            "aiohttp.client_exceptions.ClientConnectorError: Cannot connect to host api.vendor.io:443 "
            "ssl:default [Connect call failed ('203.0.113.9', 443)]",
            "service_unreachable",
        ),
        (
            "redis.exceptions.ConnectionError: Error 111 connecting to cache:6379. Connection refused.",
            "service_unreachable",
        ),
        # another port: as often a wrong one (the host-side published port inside the network)
        (
            'psycopg2.OperationalError: connection to server at "warehouse-db" (10.1.2.3), port 15432 '
            "failed: Connection refused",
            "connection_refused",
        ),
        (
            "redis.exceptions.ConnectionError: Error 111 connecting to cache:16379. Connection refused.",
            "connection_refused",
        ),
        # localhost inside a container stays a misconfiguration, whatever the port
        (
            'psycopg2.OperationalError: connection to server at "127.0.0.1", port 5432 failed: Connection '
            "refused",
            "connection_refused_localhost",
        ),
    ],
)
def test_a_refusal_at_a_remote_service_s_standard_port_is_retry_safe_and_another_port_is_not(
    cause, error_class
):
    exc, _, msg = cause.partition(": ")
    excerpt = {"exception_type": exc, "message": msg, "causes": [], "source": "traceback", "context": []}
    rule = classify(excerpt)
    assert rule.error_class == error_class
    assert is_retry_safe(rule.error_class) == (error_class == "service_unreachable")
    # The target may sit in a chained cause under a wrapper that names no address.
    wrapped = {
        **excerpt,
        "exception_type": "RuntimeError",
        "message": "could not connect to server",
        "causes": [cause],
    }
    assert classify(wrapped).error_class == error_class


def test_a_client_that_gave_up_after_its_own_retries_and_a_full_browser_grid_are_retry_safe():
    snowflake = match_rule(
        "snowflake.connector.errors.OperationalError",
        "250001: Could not connect to Snowflake backend after 3 attempt(s).Aborting",
    )
    assert snowflake.error_class == "service_unreachable" and is_retry_safe(snowflake.error_class)
    # The same connector's login failure is credentials, not the network.
    login = match_rule(
        "snowflake.connector.errors.DatabaseError",
        "250001 (08001): Failed to connect to DB: acme.snowflakecomputing.com:443. Incorrect username or "
        "password was specified.",
    )
    assert login.error_class == "invalid_credentials"
    grid = match_rule(
        "selenium.common.exceptions.SessionNotCreatedException",
        "Message: Could not start a new session. New session request timed out",
    )
    assert grid.error_class == "remote_capacity_unavailable" and is_retry_safe(grid.error_class)


def test_the_gate_page_documents_every_class_of_the_catalogue_as_the_code_does():
    """docs/gate.md's generated block `catalogue` holds a row per class of the catalogue and per
    disputed reading, in the code's words (scripts/docs.py writes it from catalogue_markdown)."""
    import re
    from pathlib import Path

    from airflow_doctor.judgement.catalogue import CATALOGUE, DISPUTED, catalogue_markdown

    page = (Path(__file__).resolve().parents[2] / "docs" / "gate.md").read_text(encoding="utf-8")
    block = re.search(
        r"^<!-- generated:catalogue -->\n(.*?)^<!-- /generated:catalogue -->$", page, re.S | re.M
    )
    assert block, "docs/gate.md has no generated block `catalogue`"
    assert block.group(1) == catalogue_markdown() + "\n", "stale: python -m scripts.docs --write"
    for c in (*CATALOGUE.values(), *DISPUTED.values()):
        assert f"| `{c.name}` | {c.what} | {c.why_retry_helps} | {c.permanent_look_alike} |" in block.group(1)


# Every rule id ever published. An id may be added; renaming or removing one breaks whatever cites it
# (a reason, a note, a stored decision), so this list only grows.
PUBLISHED_RULE_IDS = frozenset(
    {
        "execution-api-refused-state-change", "kubernetes-409-object-modified",
        "databricks-cloud-or-service-fault", "bigquery-rate-limit-exceeded", "oom-or-sigkill", "disk-full",
        "native-segfault", "credentials-rejected", "credentials-missing", "file-permission-denied",
        "access-denied-403", "airflow-connection-missing", "airflow-variable-missing",
        "host-unresolvable-or-unroutable", "tls-certificate-unverified", "airflow3-orm-access-in-task",
        "docker-socket-missing", "sensor-timed-out", "api-quota-exhausted", "task-sigterm-or-timeout",
        "worker-lost-or-zombie", "kubernetes-pod-start-timeout", "db-deadlock", "lock-wait-timeout",
        "db-serialization-failure-40001", "google-transaction-aborted", "db-statement-timeout",
        "db-connection-slots-exhausted", "db-failover-or-restart", "db-connection-dropped",
        "dns-temporary-failure-eai-again", "dns-resolution-failed", "connection-refused", "connection-reset",
        "tls-connection-dropped", "docker-container-config-rejected", "http-5xx", "service-throttling",
        "kafka-brokers-unavailable", "remote-capacity-exhausted", "http-429-rate-limit", "read-timeout",
        "network-timeout", "snowflake-client-gave-up", "could-not-connect", "python-module-missing",
        "jinja-template-not-found", "jinja-template-error", "executable-not-found", "syntax-error",
        "constraint-violation", "data-type-conversion", "data-parse-error", "object-not-found",
        "python-code-error", "data-quality-check-failed", "localhost-refused-in-container",
        "kubernetes-quota-in-use", "kubernetes-quota-too-small", "refused-at-standard-port",
        "aws-region-does-not-exist", "airflow-try-reset-by-scheduler", "airflow-try-set-from-outside",
    }
)  # fmt: skip


def _every_rule():
    from airflow_doctor.judgement import rules

    return [*rules.RULES, *(v for v in vars(rules).values() if isinstance(v, rules.Rule))]


def test_every_rule_has_a_stable_unique_id():
    import re

    ids = [rule.id for rule in dict.fromkeys(_every_rule())]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert all(re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", i) for i in ids), ids
    assert set(ids) >= PUBLISHED_RULE_IDS, sorted(PUBLISHED_RULE_IDS - set(ids))


def test_rules_catalogue_and_disputes_share_one_error_class_vocabulary():
    from airflow_doctor.judgement.catalogue import CATALOGUE, DISPUTED
    from airflow_doctor.judgement.error_classes import ErrorClass

    named = {rule.error_class for rule in _every_rule()}
    assert all(isinstance(c, ErrorClass) for c in named | set(CATALOGUE) | set(DISPUTED))
    # the catalogue and the disputed readings name only classes a rule can read
    assert set(CATALOGUE) | set(DISPUTED) <= named
    # and every member of the vocabulary is read by some rule
    assert named == set(ErrorClass)


def test_an_error_class_is_the_string_the_knowledge_base_and_the_corpora_store():
    import json

    from airflow_doctor.judgement.error_classes import ErrorClass
    from airflow_doctor.models import Decision

    assert ErrorClass.db_deadlock == "db_deadlock" and f"{ErrorClass.db_deadlock}" == "db_deadlock"
    assert {"db_deadlock": 1}[ErrorClass.db_deadlock] == 1 and is_retry_safe("db_deadlock")
    assert json.dumps([ErrorClass.db_deadlock]) == '["db_deadlock"]'
    decision = Decision(verdict="auto_retry", reasons=[], retry_class=ErrorClass.db_deadlock)
    assert (
        type(decision.retry_class) is str and decision.model_dump(mode="json")["retry_class"] == "db_deadlock"
    )


def _quota(requested: str, used: str, limited: str) -> str:
    return (
        'pods "etl-7f3k" is forbidden: exceeded quota: team-compute, '
        f"requested: {requested}, used: {used}, limited: {limited}"
    )


def test_a_kubernetes_quota_held_by_other_pods_is_capacity_and_one_the_pod_can_never_fit_is_not():
    api = "kubernetes.client.exceptions.ApiException"
    held = match_rule(
        api, "(403) Reason: Forbidden: " + _quota("requests.cpu=500m", "requests.cpu=3800m", "requests.cpu=4")
    )
    assert held.error_class == "remote_capacity_unavailable" and is_retry_safe(held.error_class)
    # Binary and decimal suffixes: 3Gi (3221225472) fits 4G (4000000000).
    assert match_rule(api, _quota("limits.memory=3Gi", "limits.memory=2G", "limits.memory=4G")).transient
    too_big = match_rule(
        api,
        _quota(
            "requests.cpu=6,requests.memory=1Gi",
            "requests.cpu=0,requests.memory=0",
            "requests.cpu=4,requests.memory=8Gi",
        ),
    )
    assert too_big.error_class == "resource_quota_too_small" and not too_big.transient
    # Not a quota message: a plain 403 stays a permission problem.
    assert match_rule(
        api, '(403) Reason: Forbidden: pods is forbidden: User "etl" cannot create'
    ).error_class == ("access_denied")


@pytest.mark.parametrize(
    ("subject", "error_class", "retry_safe"),
    [
        (
            "kubernetes.client.exceptions.ApiException: (409) Reason: Conflict: Operation cannot be fulfilled on "
            'configmaps "etl-state": the object has been modified; please apply your changes to the latest '
            "version and try again",
            "concurrent_update_conflict",
            True,
        ),
        (
            "airflow.exceptions.AirflowException: Job run 88 failed with terminal state: INTERNAL_ERROR: Cluster "
            "0412-abc was terminated. Reason: AWS_INSUFFICIENT_INSTANCE_CAPACITY_FAILURE (CLOUD_FAILURE).",
            "remote_capacity_unavailable",
            True,
        ),
        (
            "airflow.exceptions.AirflowException: Job run 89 failed: Cluster 0412-abd was terminated. Reason: "
            "INIT_SCRIPT_FAILURE (CLIENT_ERROR).",
            None,
            False,
        ),
        (
            "snowflake.connector.errors.OperationalError: 250003: Failed to get the response. Hanging? method: "
            "post, url: https://acme.snowflakecomputing.com:443/queries/v1/query-request",
            "service_unreachable",
            True,
        ),
    ],
)
def test_a_platform_s_own_word_for_retryable_is_read(subject, error_class, retry_safe):
    exc, _, msg = subject.partition(": ")
    rule = match_rule(exc, msg)
    if error_class is not None:
        assert rule.error_class == error_class
    assert bool(rule and rule.transient and is_retry_safe(rule.error_class)) == retry_safe


def test_a_read_timeout_is_surer_than_a_connect_timeout():
    # Read: the service took the call and was slow. Connect: a wrong address or a firewall looks the same.
    read = match_rule(
        "requests.exceptions.ReadTimeout",
        "HTTPSConnectionPool(host='api.vendor.io', port=443): Read timed out. (read timeout=30)",
    )
    connect = match_rule(
        "requests.exceptions.ConnectTimeout",
        "HTTPSConnectionPool(host='10.8.0.3', port=443): "
        "Max retries exceeded (Caused by ConnectTimeoutError(..., 'Connection to 10.8.0.3 timed out. "
        "(connect timeout=10)'))",
    )
    assert read.error_class == connect.error_class == "network_timeout"
    assert read.confidence >= 0.8 > connect.confidence


def test_an_aws_endpoint_in_a_region_that_does_not_exist_is_a_misconfiguration():
    def excerpt(url: str) -> dict:
        return {
            "exception_type": "botocore.exceptions.EndpointConnectionError",
            "message": f'Could not connect to the endpoint URL: "{url}"',
            "causes": [],
            "source": "traceback",
            "context": [],
        }

    assert (
        classify(excerpt("https://athena.eu-centrl-1.amazonaws.com/")).error_class
        == "connection_misconfigured"
    )
    assert (
        classify(excerpt("https://s3-us-weast-2.amazonaws.com/exports")).error_class
        == "connection_misconfigured"
    )
    real = classify(excerpt("https://athena.eu-central-1.amazonaws.com/"))
    assert real.transient and is_retry_safe(real.error_class)
    # A bucket's own name is not a region, however it is spelled.
    assert classify(excerpt("https://raw-data-2.s3.eu-west-1.amazonaws.com/x")).transient


def test_libpq_s_older_refusal_names_its_host_and_port_on_separate_lines():
    excerpt = {
        "exception_type": "psycopg2.OperationalError",
        "message": 'could not connect to server: Connection refused\n\tIs the server running on host "warehouse" '
        "(10.4.0.9) and accepting\n\tTCP/IP connections on port 5432?",
        "causes": [],
        "source": "traceback",
        "context": [],
    }
    assert classify(excerpt).error_class == "service_unreachable"
    assert classify({**excerpt, "message": excerpt["message"].replace("5432", "6543")}).error_class == (
        "connection_refused"
    )


def test_every_retry_safe_class_has_runbook_entries_the_rules_read_as_that_class():
    """Runbook entries seed memory for each class of the catalogue (issue "Judgement that
    generalises", item 5), and a runbook example the rules read as another class would vouch for
    errors the catalogue does not cover: each transient example of a catalogue entry reads as its class."""
    from airflow_doctor.judgement.catalogue import CATALOGUE
    from airflow_doctor.knowledge.runbooks import load_runbooks, split_example

    rows = load_runbooks()
    assert set(CATALOGUE) <= {r["error_class"] for r in rows if r["transient"]}
    misread = []
    for row in rows:
        if row["transient"] and is_retry_safe(row["error_class"]):
            exc_type, message = split_example(row["excerpt"])
            rule = classify(
                {"exception_type": exc_type, "message": message, "causes": [], "source": "traceback"}
            )
            if rule is None or rule.error_class != row["error_class"]:
                misread.append((row["runbook_id"], rule and rule.error_class))
    assert misread == []


def _airflow2_stopped(state: str) -> str:
    return (
        "[2025-03-02, 04:10:11 UTC] {subprocess.py:93} INFO - exporting partition 17 of 40\n"
        "[2025-03-02, 04:10:14 UTC] {local_task_job_runner.py:302} WARNING - State of this instance has "
        f"been externally set to {state}. Terminating instance.\n"
        "[2025-03-02, 04:10:14 UTC] {process_utils.py:131} INFO - Sending 15 to group 811. PIDs of all "
        "processes in the group: [812, 811]\n"
        "[2025-03-02, 04:10:14 UTC] {taskinstance.py:1630} ERROR - Received SIGTERM. Terminating subprocesses.\n"
    )


def _airflow3_stopped(state: str | None) -> list[dict]:
    """An Airflow 3 task log (records as the logs endpoint returns them) of a try the supervisor stopped
    after its heartbeat got 409 not_running (supervisor.py, `_send_heartbeat_if_needed`)."""
    detail = {
        "reason": "not_running",
        "message": "TI is no longer in the running state and task should terminate",
        "current_state": state,
    }
    return [
        {
            "timestamp": "2026-12-05T09:39:26.41Z",
            "level": "info",
            "event": "exporting 9",
            "logger": "task.stdout",
        },
        {
            "timestamp": "2026-12-05T09:39:27.42Z",
            "level": "error",
            "event": "Server indicated the task shouldn't be running anymore. Terminating process",
            "detail": detail,
            "logger": "task",
        },
        {
            "timestamp": "2026-12-05T09:39:28.41Z",
            "level": "info",
            "event": "exporting 10",
            "logger": "task.stdout",
        },
        {"timestamp": "2026-12-05T09:39:32.43Z", "level": "error", "event": "Task killed!", "logger": "task"},
    ]


@pytest.mark.parametrize(
    ("log", "error_class"),
    [
        (_airflow2_stopped("None"), "worker_lost"),
        (_airflow2_stopped("failed"), "task_terminated"),
        (_airflow2_stopped("up_for_retry"), "task_terminated"),
        (_airflow3_stopped(None), "worker_lost"),
        (_airflow3_stopped("failed"), "task_terminated"),
        (_airflow3_stopped("success"), "task_terminated"),
        (
            "[error    ] Server indicated the task shouldn't be running anymore. Terminating process [task] "
            "detail={'reason': 'not_running', 'message': 'TI is no longer in the running state and task "
            "should terminate', 'current_state': None}\n[error    ] Task killed! [task]\n",
            "worker_lost",
        ),
    ],
    ids=[
        "a2-reset-to-none",
        "a2-marked-failed",
        "a2-up-for-retry",
        "a3-reset",
        "a3-marked-failed",
        "a3-marked-success",
        "a3-console-text",
    ],
)
def test_a_stopped_try_is_read_by_who_stopped_it(log, error_class):
    """A try stopped because the scheduler reset its state to none (an orphaned try after a scheduler
    restart or failover) is the platform's doing and retry-safe; one a person or the API set to
    failed or success, or the scheduler failed itself, is not."""
    rule = classify(excerpt_record(extract_excerpt(log)))
    assert rule.error_class == error_class
    assert rule.transient == is_retry_safe(error_class) == (error_class == "worker_lost")
    if isinstance(log, list) and log[1]["detail"]["current_state"] in ("failed", "success"):
        assert "A person, the REST API" in rule.root_cause  # not the generic "stopped from outside"


def test_a_printed_reset_line_does_not_make_a_code_error_retry_safe():
    forged = (
        "[2025-03-02, 04:10:14 UTC] {local_task_job_runner.py:302} WARNING - State of this instance has "
        "been externally set to None. Terminating instance.\n"
        "Traceback (most recent call last):\n"
        '  File "/opt/airflow/dags/export.py", line 12, in export\n'
        "    row['customer_id']\n"
        "KeyError: 'customer_id'\n"
    )
    assert classify(excerpt_record(extract_excerpt(forged))).error_class == "task_code_error"


def test_airflow_3_s_supervisor_says_which_signal_ended_the_task_process():
    """supervisor.py logs "Process terminated by signal." with the signal's name when the task
    process died of a signal it did not send: SIGKILL reads as memory, SIGTERM as stopped from outside."""

    def ended_by(signal: int, name: str) -> str:
        message = "Process terminated by signal."
        if name == "SIGKILL":
            message += " Likely out of memory error (OOM)."
        record = {"level": "error", "event": message, "signal": signal, "signal_name": name, "logger": "task"}
        return classify(excerpt_record(extract_excerpt([record]))).error_class

    assert ended_by(-9, "SIGKILL") == "oom_killed_sigkill"
    assert ended_by(-15, "SIGTERM") == "task_terminated"


@pytest.mark.parametrize(
    ("line", "error_class"),
    [
        # a query cancelled at its own time limit is as slow next time: not a network timeout
        ("psycopg2.errors.QueryCanceled: canceling statement due to statement timeout", "statement_timeout"),
        (
            "snowflake.connector.errors.ProgrammingError: 000625 (57014): Statement reached its statement or "
            "warehouse timeout of 1800 second(s) and was canceled.",
            "statement_timeout",
        ),
        ("psycopg2.errors.LockNotAvailable: canceling statement due to lock timeout", "lock_contention"),
        (
            "google.api_core.exceptions.Aborted: 409 Transaction was aborted because of a concurrent write.",
            "db_serialization_failure",
        ),
        (
            "MySQLdb.OperationalError: (2002, \"Can't connect to server on 'reporting-db' (111)\")",
            "connection_refused",
        ),
        ("cx_Oracle.DatabaseError: ORA-12541: TNS:no listener", "connection_refused"),
        (
            "airflow.exceptions.AirflowException: SSH operator error: No existing session",
            "connection_reset_by_remote",
        ),
        # SQL Server's DB-Library (pymssql) when the server dropped the connection
        (
            "pymssql._pymssql.OperationalError: (20047, b'DB-Lib error message 20047, severity 9:\\n"
            "DBPROCESS is dead or not enabled\\n')",
            "db_connection_lost",
        ),
        (
            "redshift_connector.error.InterfaceError: BrokenPipe: server socket closed. Please check that "
            "client side networking configurations such as Load Balancers have not been configured to close "
            "idle connections.",
            "connection_reset_by_remote",
        ),
        (
            "ConnectionAbortedError: [Errno 103] Software caused connection abort",
            "connection_reset_by_remote",
        ),
        (
            "trino.exceptions.TrinoQueryError: TrinoQueryError(type=INTERNAL_ERROR, name=NO_NODES_AVAILABLE, "
            'message="No nodes available to run query", query_id=20261205_020001_00042_abcde)',
            "remote_capacity_unavailable",
        ),
        ("gcsfs.retry.HttpError: Backend Error, 503", "http_5xx_server_error"),
    ],
)
def test_database_and_ssh_readings(line, error_class):
    exc_type, _, message = line.partition(": ")
    rule = classify({"exception_type": exc_type, "message": message, "causes": [], "source": "traceback"})
    assert rule is not None and rule.error_class == error_class
    assert rule.transient == (error_class != "statement_timeout")

"""Forged primary errors: permanent failures whose log makes a transient-looking line the error.

Every log here is a PERMANENT failure: a retry with nothing changed fails the same way. What makes it
hostile is where the transient-looking words sit (issue #23 item 3, "The error is the error"):

- wrapper: a subprocess wrapper (BashOperator, a `subprocess.CalledProcessError`, spark-submit, a
  dbt run) whose printed output shows the real failure first and a transient-looking line after it
  (a cleanup step's reset, 503 or timeout), the wrapper's exception last;
- retry-wrapper: a retry loop that logs "will retry" around a permanent error, then gives up;
- teardown: a permanent error, then a teardown's, callback's or cleanup's timeout;
- chained: `raise ... from`: the outer exception reads transient, its direct cause is permanent;
- quoted: a conversion or parse error whose message quotes an HTTP reason phrase or a transient word
  from the data it was converting (a `ValueError: invalid literal ...: '503 ...'`, a pydantic error);
- db-detail: a constraint violation or data error whose `DETAIL:` / `HINT:` / `CONTEXT:` lines carry
  another class's keywords (timeout, connection, unavailable);
- http-body: an HTTP 4xx whose quoted response body says "503 Service Unavailable";
- schema-names: a schema error listing column or field names such as `timeout_seconds`;
- huge: an exception message of megabytes (its type and first words must stay the primary error);
- notes: exception notes (PEP 678) that must be rendered, beside a permanent error.

`FORGED_LOGS` is a list of `pytest.param(log, id="<kind>.<case>")`; ids with `a3` are Airflow 3
structured records (a list of dicts, or JSON lines with `a3jsonl`), the others Airflow 2 text.
`TRANSIENT_CONTROLS` are genuine transient failures (nothing permanent anywhere) the offline doctor
still auto-retries. All text is invented for these tests.
"""

from __future__ import annotations

import pytest

from tests.judgement.adversarial_logs import (
    BASH_OPERATOR_FRAMES,
    PSYCOPG2_CONNECT_FRAMES,
    a2,
    a3_failed,
    a3_started,
    bash_failed,
    callback_error,
    dag_frame,
    exc,
    exited,
    jsonl,
    marked_failed,
    printed,
    py_tb,
    rec,
    started,
    subprocess_output,
    task_failed,
    tb,
)

KINDS = (
    "wrapper",
    "retry-wrapper",
    "teardown",
    "chained",
    "quoted",
    "db-detail",
    "http-body",
    "schema-names",
    "huge",
    "notes",
)

HOOK = "airflow.task.hooks.airflow.providers.standard.hooks.subprocess.SubprocessHook"
BASH_FAILED = "Bash command failed. The command returned a non-zero exit code 1."
CHAIN = "\nThe above exception was the direct cause of the following exception:\n\n"
CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def hook_output(t: int, *lines: str) -> list[dict]:
    """Airflow 3's SubprocessHook records: the command's output, one info record per line."""
    return [rec(t, line, "info", HOOK) for line in lines]


def a3_bash(dag: str, *lines: str) -> list[dict]:
    """An Airflow 3 BashOperator try: the hook's output, then the operator's wrapper exception."""
    return (
        a3_started(0, dag)
        + [
            rec(
                1, "Running command: ['/usr/bin/bash', '-c', 'bash /opt/airflow/scripts/run.sh']", logger=HOOK
            )
        ]
        + hook_output(2, *lines)
        + [rec(3, "Command exited with return code 1", logger=HOOK)]
        + a3_failed(3, exc("airflow.sdk.exceptions.AirflowException", BASH_FAILED))
    )


def called_process_error(cmd: str, status: int = 1) -> str:
    return f"subprocess.CalledProcessError: Command '{cmd}' returned non-zero exit status {status}."


HUGE_NOTE = "looked up in the partner region table loaded at 03:00"


def huge(n: int, piece: str) -> str:
    """`piece` repeated to about `n` characters: a message of megabytes."""
    return (piece * (n // len(piece) + 1))[:n]


FORGED_LOGS = [
    # -- wrapper ---------------------------------------------------------------------------------
    pytest.param(
        started(0, "ledger", "load_ledger")
        + subprocess_output(
            1,
            "bash /opt/airflow/scripts/load_ledger.sh",
            'psql: error: connection to server at "ledger-db.internal" (10.8.2.4), port 5432 failed: '
            'FATAL:  password authentication failed for user "ledger_rw"',
            "cleanup: uploading partial artifacts to s3://acme-artifacts/ledger/",
            "ERROR: artifact upload aborted: Connection reset by peer",
        )
        + bash_failed(4)
        + marked_failed(4, "ledger", "load_ledger"),
        id="wrapper.a2-psql-auth-then-upload-reset",
    ),
    pytest.param(
        started(0, "marts", "dbt_run")
        + subprocess_output(
            1,
            "dbt run --select marts.finance",
            "10:00:02  1 of 3 START sql table model marts.revenue_daily ........ [RUN]",
            "10:00:03  1 of 3 ERROR creating sql table model marts.revenue_daily  [ERROR in 0.41s]",
            "10:00:03  Database Error in model revenue_daily (models/marts/revenue_daily.sql)",
            "10:00:03    permission denied for schema finance_marts",
            "10:00:04  Done. PASS=2 WARN=0 ERROR=1 SKIP=0 TOTAL=3",
            "Error: could not post the run summary: 503 Service Unavailable",
        )
        + bash_failed(5),
        id="wrapper.a2-dbt-permission-then-summary-503",
    ),
    pytest.param(
        started(0, "lake", "compact_events")
        + a2(1, "spark_submit.py:492", "INFO", "Spark-Submit cmd: spark-submit --master yarn compact.py")
        + "".join(
            a2(2, "spark_submit.py:634", "INFO", line)
            for line in (
                'Exception in thread "main" org.apache.spark.sql.AnalysisException: [PATH_NOT_FOUND] Path '
                "does not exist: s3a://acme-lake/raw/events/ds=2026-11-20.",
                "26/11/21 10:00:14 WARN ShutdownHookManager: ShutdownHook '$anon$2' did not finish in time",
                "java.util.concurrent.TimeoutException: Futures timed out after [10 seconds]",
            )
        )
        + task_failed(
            3,
            tb(
                "airflow.exceptions.AirflowException: Cannot execute: spark-submit --master yarn compact.py. "
                "Error code is: 1.",
                operator=BASH_OPERATOR_FRAMES[:3],
            ),
        ),
        id="wrapper.a2-spark-path-missing-then-shutdown-timeout",
    ),
    pytest.param(
        started(0, "catalog", "sync_catalog")
        + printed(1, "Running: dbt build --select catalog", level="INFO")
        + printed(2, "Compilation Error in model catalog_items (models/catalog_items.sql)", level="INFO")
        + printed(2, '  column "customer_tier" does not exist', level="INFO")
        + printed(3, "ERROR: could not release the advisory lock: timed out after 30s")
        + task_failed(
            4,
            tb(
                called_process_error("dbt build --select catalog", 2),
                dag_frame("catalog", 33, "sync_catalog", "subprocess.run(cmd, check=True, shell=True)"),
                ("/usr/local/lib/python3.11/subprocess.py", 571, "run", "raise CalledProcessError("),
            ),
        ),
        id="wrapper.a2-calledprocesserror-missing-column-then-lock-timeout",
    ),
    pytest.param(
        a3_bash(
            "partner_sync",
            "HTTP/1.1 401 Unauthorized",
            '{"error":"invalid_token","error_description":"The access token is invalid"}',
            "retrying the status ping",
            "curl: (56) Recv failure: Connection reset by peer",
            "ERROR: status ping failed: Connection reset by peer",
        ),
        id="wrapper.a3-curl-401-then-ping-reset",
    ),
    pytest.param(
        jsonl(
            a3_bash(
                "geo_enrich",
                "Fetching tiles for 1,208 postcodes",
                "Error: geocoder rejected the request: quota exceeded for project acme-geo (daily limit 25000)",
                "Writing partial results to /tmp/geo_partial.parquet",
                "Error: failed to close the tile cache: 503 Service Unavailable",
            )
        ),
        id="wrapper.a3jsonl-quota-then-cache-503",
    ),
    pytest.param(
        a3_bash(
            "invoices",
            "aws: [ERROR]: An error occurred (AccessDenied) when calling the PutObject operation: Access Denied",
            "Cleaning up the staging prefix",
            'Read timeout on endpoint URL: "https://s3.eu-west-1.amazonaws.com/acme-staging?delete"',
        ),
        id="wrapper.a3-s3-access-denied-then-read-timeout",
    ),
    pytest.param(
        started(0, "ml", "train_model")
        + subprocess_output(
            1,
            "python /opt/airflow/jobs/train.py",
            "Traceback (most recent call last):",
            '  File "/opt/airflow/jobs/train.py", line 88, in <module>',
            "    features = load_features(cfg)",
            "FileNotFoundError: [Errno 2] No such file or directory: '/data/features/2026-11-20.parquet'",
            "wandb: ERROR Failed to upload run summary: HTTPSConnectionPool(host='api.wandb.ai', port=443): "
            "Read timed out. (read timeout=20)",
        )
        + bash_failed(3),
        id="wrapper.a2-python-file-missing-then-telemetry-timeout",
    ),
    # -- retry-wrapper ---------------------------------------------------------------------------
    pytest.param(
        started(0, "crm", "pull_contacts")
        + "".join(
            a2(
                t,
                "crm.py:51",
                "WARNING",
                f"Attempt {n} of 3 failed, will retry in {2**n}s: 401 Client "
                "Error: Unauthorized for url: https://crm.example.com/api/v3/contacts",
            )
            for n, t in ((1, 1), (2, 3), (3, 7))
        )
        + a2(
            8, "crm.py:58", "ERROR", "Giving up after 3 attempts; the upstream may be temporarily unavailable"
        )
        + task_failed(
            8,
            tb(
                "tenacity.RetryError: RetryError[<Future at 0x7f3b2a1c4d90 state=finished raised HTTPError>]",
                dag_frame("crm", 60, "pull_contacts", "return fetch_page(cursor)"),
            ),
        ),
        id="retry-wrapper.a2-tenacity-401-will-retry",
    ),
    pytest.param(
        a3_started(0, "billing")
        + [
            rec(
                t,
                f"Request to billing API failed (attempt {n}/4), will retry: 403 Forbidden: "
                "project acme-billing has no access to invoices.read",
                "warning",
                "billing.client",
            )
            for n, t in ((1, 1), (2, 2), (3, 4), (4, 8))
        ]
        + a3_failed(
            9,
            exc(
                "airflow.sdk.exceptions.AirflowException",
                "No retries remaining for billing export; last error was retryable: upstream timed out",
            ),
        ),
        id="retry-wrapper.a3-403-will-retry-no-retries-remaining",
    ),
    pytest.param(
        started(0, "feeds", "ingest_feed")
        + a2(1, "feeds.py:40", "WARNING", "ValueError: unsupported feed version 'v1-legacy'; will retry")
        + a2(3, "feeds.py:40", "WARNING", "ValueError: unsupported feed version 'v1-legacy'; will retry")
        + a2(5, "feeds.py:44", "ERROR", "Retries exhausted for feed acme-partners (timeout budget 300s)")
        + task_failed(
            5,
            tb(
                "airflow.exceptions.AirflowException: retries exhausted: feed ingest did not succeed in time",
                dag_frame("feeds", 46, "ingest_feed", "raise AirflowException(msg)"),
            ),
        ),
        id="retry-wrapper.a2-unsupported-version-retries-exhausted",
    ),
    # -- teardown --------------------------------------------------------------------------------
    pytest.param(
        started(0, "orders", "merge_orders")
        + task_failed(
            1,
            tb(
                'psycopg2.errors.UndefinedTable: relation "staging.orders_v2" does not exist\n'
                "LINE 1: INSERT INTO marts.orders SELECT * FROM staging.orders_v2",
                dag_frame("orders", 27, "merge_orders", "cur.execute(MERGE_SQL)"),
            ),
        )
        + marked_failed(1, "orders", "merge_orders")
        + a2(2, "ssh.py:410", "WARNING", "Failed to close the SSH tunnel to bastion: timed out")
        + exited(3, "merge_orders", 'relation "staging.orders_v2" does not exist'),
        id="teardown.a2-undefined-table-then-tunnel-timeout",
    ),
    pytest.param(
        started(0, "cleanup", "drop_scratch")
        + subprocess_output(
            1,
            "bash -c 'trap cleanup EXIT; psql -f /opt/sql/rollup.sql'",
            'ERROR:  column "region_code" of relation "rollup_daily" does not exist',
            "ERROR:  canceling statement due to lock timeout",
            "CONTEXT:  while dropping the scratch schema in cleanup()",
        )
        + bash_failed(3),
        id="teardown.a2-trap-missing-column-then-lock-timeout",
    ),
    pytest.param(
        a3_started(0, "pricing")
        + a3_failed(
            1,
            exc("KeyError", "'currency_code'", ("/opt/airflow/dags/pricing.py", 71, "price_rows")),
        )
        + [
            rec(
                2,
                "on_failure_callback failed: ReadTimeout: HTTPSConnectionPool(host='hooks.slack.com', "
                "port=443): Read timed out. (read timeout=10)",
                "error",
                "airflow.task",
            ),
            rec(
                3,
                "Teardown task release_locks: timed out waiting for the lock service",
                "warning",
                "airflow.task",
            ),
        ],
        id="teardown.a3-keyerror-then-callback-timeout",
    ),
    pytest.param(
        started(0, "exports", "export_sftp")
        + task_failed(
            1,
            tb(
                "paramiko.ssh_exception.AuthenticationException: Authentication failed.",
                dag_frame("exports", 19, "export_sftp", "client = hook.get_conn()"),
            ),
        )
        + callback_error(
            2,
            py_tb(
                "TimeoutError: [Errno 110] Connection timed out",
                ("/opt/airflow/plugins/pager.py", 12, "page_oncall", "sock.connect((PAGER_HOST, 443))"),
            ),
        ),
        id="teardown.a2-sftp-auth-then-pager-timeout",
    ),
    # -- chained ---------------------------------------------------------------------------------
    pytest.param(
        started(0, "warehouse", "export_orders")
        + task_failed(
            1,
            tb(
                "psycopg2.errors.InsufficientPrivilege: permission denied for table orders",
                dag_frame("warehouse", 30, "export_orders", "cur.copy_expert(COPY_SQL, buf)"),
            )
            + CHAIN
            + tb(
                "TimeoutError: export of orders did not complete within 300s",
                dag_frame("warehouse", 34, "export_orders", "raise TimeoutError(msg) from exc"),
            ),
        ),
        id="chained.a2-timeout-from-insufficient-privilege",
    ),
    pytest.param(
        a3_started(0, "partner")
        + a3_failed(
            1,
            exc(
                "requests.exceptions.ConnectionError",
                "partner API unreachable: connection reset while uploading batch 14",
                ("/opt/airflow/dags/partner.py", 55, "push_batch"),
            ),
            exc(
                "botocore.exceptions.NoCredentialsError",
                "Unable to locate credentials",
                ("/opt/airflow/dags/partner.py", 49, "sign_request"),
                is_cause=True,
            ),
        ),
        id="chained.a3-reset-from-no-credentials",
    ),
    pytest.param(
        started(0, "sync", "sync_accounts")
        + task_failed(
            1,
            tb(
                "KeyError: 'account_id'",
                dag_frame("sync", 40, "sync_accounts", "ids = [r['account_id'] for r in rows]"),
            )
            + CHAIN
            + tb(
                "airflow.exceptions.AirflowException: sync aborted: upstream service unavailable (503)",
                dag_frame("sync", 44, "sync_accounts", "raise AirflowException(msg) from err"),
            ),
        ),
        id="chained.a2-503-wrapper-from-keyerror",
    ),
    pytest.param(
        jsonl(
            a3_started(0, "kyc")
            + a3_failed(
                1,
                exc(
                    "kyc.client.UpstreamTimeout",
                    "KYC provider timed out",
                    ("/opt/airflow/dags/kyc.py", 81, "verify"),
                ),
                exc(
                    "ssl.SSLCertVerificationError",
                    "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
                    "failed: unable to get local issuer certificate (_ssl.c:1006)",
                    ("/opt/airflow/dags/kyc.py", 77, "verify"),
                    is_cause=True,
                ),
            )
        ),
        id="chained.a3jsonl-timeout-from-certificate",
    ),
    # -- quoted ----------------------------------------------------------------------------------
    pytest.param(
        started(0, "status", "load_status")
        + a2(1, "status.py:20", "INFO", "Parsing s3://acme-raw/status/2026-11-20.csv")
        + task_failed(
            2,
            tb(
                "ValueError: invalid literal for int() with base 10: '503 Service Unavailable'",
                dag_frame("status", 26, "load_status", 'code = int(row["http_code"])'),
            ),
        ),
        id="quoted.a2-invalid-literal-503",
    ),
    pytest.param(
        a3_started(0, "shipments")
        + a3_failed(
            1,
            exc(
                "pydantic_core._pydantic_core.ValidationError",
                "1 validation error for Shipment\ncarrier_status\n  Input should be 'delivered', "
                "'in_transit' or 'returned' [type=enum, input_value='Gateway Timeout', input_type=str]\n"
                "    For further information visit https://errors.pydantic.dev/2.9/v/enum",
                ("/opt/airflow/dags/shipments.py", 38, "parse"),
            ),
        ),
        id="quoted.a3-pydantic-gateway-timeout",
    ),
    pytest.param(
        started(0, "events", "load_events")
        + task_failed(
            1,
            tb(
                "ValueError: time data 'connection timed out' does not match format '%Y-%m-%d %H:%M:%S'",
                dag_frame("events", 52, "load_events", 'ts = datetime.strptime(row["ts"], FMT)'),
            ),
        ),
        id="quoted.a2-strptime-timed-out",
    ),
    pytest.param(
        a3_started(0, "fx")
        + a3_failed(
            1,
            exc(
                "ValueError",
                "could not convert string to float: 'Service Temporarily Unavailable'",
                ("/opt/airflow/dags/fx.py", 19, "rates"),
            ),
        ),
        id="quoted.a3-float-temporarily-unavailable",
    ),
    pytest.param(
        started(0, "webhooks", "replay_webhooks")
        + task_failed(
            1,
            tb(
                "json.decoder.JSONDecodeError: Expecting ',' delimiter: line 1 column 58 (char 57)\n"
                'document: \'{"status": "ECONNRESET" "detail": "Connection reset by peer"}\'',
                dag_frame("webhooks", 64, "replay_webhooks", "payload = json.loads(body)"),
            ),
        ),
        id="quoted.a2-json-decode-econnreset",
    ),
    pytest.param(
        a3_started(0, "sensors")
        + a3_failed(
            1,
            exc(
                "ValueError",
                "Unknown device state 'temporarily unavailable' in row 118 of readings.csv",
                ("/opt/airflow/dags/sensors.py", 45, "state_of"),
            ),
        ),
        id="quoted.a3-unknown-state-temporarily-unavailable",
    ),
    pytest.param(
        started(0, "lake", "cast_events")
        + task_failed(
            1,
            tb(
                "pyarrow.lib.ArrowInvalid: Could not convert 'Bad Gateway' with type str: tried to convert "
                "to int64",
                dag_frame("lake", 90, "cast_events", "table = pa.Table.from_pandas(df, schema=SCHEMA)"),
            ),
        ),
        id="quoted.a2-arrow-bad-gateway",
    ),
    # -- db-detail -------------------------------------------------------------------------------
    pytest.param(
        started(0, "endpoints", "upsert_endpoints")
        + task_failed(
            1,
            tb(
                'psycopg2.errors.UniqueViolation: duplicate key value violates unique constraint "endpoints_pkey"\n'
                "DETAIL:  Key (name)=(connection reset by peer) already exists.",
                dag_frame("endpoints", 44, "upsert_endpoints", "cur.executemany(INSERT_SQL, rows)"),
            ),
        ),
        id="db-detail.a2-unique-connection-reset",
    ),
    pytest.param(
        a3_started(0, "incidents")
        + a3_failed(
            1,
            exc(
                "sqlalchemy.exc.IntegrityError",
                '(psycopg2.errors.ForeignKeyViolation) insert or update on table "incidents" violates '
                'foreign key constraint "incidents_cause_fkey"\nDETAIL:  Key (cause)=(upstream timeout) is '
                'not present in table "causes".\n[SQL: INSERT INTO incidents (id, cause) VALUES (%(id)s, '
                "%(cause)s)]",
                ("/opt/airflow/dags/incidents.py", 61, "load"),
            ),
        ),
        id="db-detail.a3-foreign-key-upstream-timeout",
    ),
    pytest.param(
        started(0, "probes", "store_probes")
        + task_failed(
            1,
            tb(
                'psycopg2.errors.CheckViolation: new row for relation "probes" violates check constraint '
                '"probes_status_check"\nDETAIL:  Failing row contains (41, service unavailable, 2026-11-20).',
                dag_frame("probes", 30, "store_probes", "cur.execute(INSERT_SQL, row)"),
            ),
        ),
        id="db-detail.a2-check-service-unavailable",
    ),
    pytest.param(
        a3_started(0, "metrics")
        + a3_failed(
            1,
            exc(
                "psycopg2.errors.NotNullViolation",
                'null value in column "latency_ms" of relation "metrics" violates not-null constraint\n'
                "DETAIL:  Failing row contains (9, gateway timeout, null).\n"
                'CONTEXT:  COPY metrics, line 9: "9,gateway timeout,"',
                ("/opt/airflow/dags/metrics.py", 22, "copy_rows"),
            ),
        ),
        id="db-detail.a3-not-null-gateway-timeout",
    ),
    pytest.param(
        started(0, "audit", "load_audit")
        + task_failed(
            1,
            tb(
                'psycopg2.errors.InvalidTextRepresentation: invalid input syntax for type integer: "timed out"\n'
                'CONTEXT:  COPY audit_events, line 3, column retries: "timed out"\n'
                "HINT:  the connection pool reports the server is temporarily unavailable",
                dag_frame("audit", 48, "load_audit", "cur.copy_expert(COPY_SQL, fh)"),
            ),
        ),
        id="db-detail.a2-invalid-input-timed-out",
    ),
    # -- http-body -------------------------------------------------------------------------------
    pytest.param(
        started(0, "vendor", "push_orders")
        + task_failed(
            1,
            tb(
                "requests.exceptions.HTTPError: 422 Client Error: Unprocessable Entity for url: "
                'https://api.vendor.example/v2/orders. Response body: {"error": "upstream said 503 '
                'Service Unavailable", "field": "sku"}',
                dag_frame("vendor", 58, "push_orders", "resp.raise_for_status()"),
            ),
        ),
        id="http-body.a2-422-body-503",
    ),
    pytest.param(
        a3_started(0, "ads")
        + a3_failed(
            1,
            exc(
                "airflow.providers.http.exceptions.HttpErrorException",
                "400:Bad Request - body: <html><title>503 Service Unavailable</title><body>campaign_id is "
                "required</body></html>",
                ("/opt/airflow/dags/ads.py", 33, "create_campaign"),
            ),
        ),
        id="http-body.a3-400-html-503",
    ),
    # -- schema-names ----------------------------------------------------------------------------
    pytest.param(
        started(0, "jobs", "load_jobs")
        + task_failed(
            1,
            tb(
                "google.api_core.exceptions.BadRequest: 400 Provided Schema does not match Table "
                "acme:ops.job_runs. Field timeout_seconds has changed type from INTEGER to STRING",
                dag_frame("jobs", 71, "load_jobs", "job.result()"),
            ),
        ),
        id="schema-names.a2-bigquery-timeout-seconds",
    ),
    pytest.param(
        a3_started(0, "conn_stats")
        + a3_failed(
            1,
            exc(
                "ValueError",
                "Column mismatch: expected ['host', 'connection_reset_count', 'read_timeout_ms'] "
                "but got ['host', 'resets', 'timeout']",
                ("/opt/airflow/dags/conn_stats.py", 40, "check_columns"),
            ),
        ),
        id="schema-names.a3-column-mismatch",
    ),
    pytest.param(
        started(0, "gw", "load_gateway_stats")
        + task_failed(
            1,
            tb(
                "KeyError: \"None of [Index(['gateway_timeout', 'service_unavailable'], dtype='object')] "
                'are in the [columns]"',
                dag_frame("gw", 18, "load_gateway_stats", "df = df[COLUMNS]"),
            ),
        ),
        id="schema-names.a2-pandas-keyerror-columns",
    ),
    # -- huge ------------------------------------------------------------------------------------
    pytest.param(
        started(0, "dump", "validate_dump")
        + task_failed(
            1,
            tb(
                "ValueError: row failed validation: " + huge(10 * 1024 * 1024 + 4096, "payload=AAAA "),
                dag_frame("dump", 12, "validate_dump", "raise ValueError(msg)"),
            ),
        )
        + marked_failed(2, "dump", "validate_dump")
        + exited(2, "validate_dump", "row failed validation"),
        id="huge.a2-10mb-valueerror",
    ),
    pytest.param(
        a3_started(0, "blob")
        + a3_failed(
            1,
            exc(
                "KeyError",
                "'" + huge(10 * 1024 * 1024, "timed out; ") + "'",
                ("/opt/airflow/dags/blob.py", 9, "lookup"),
                notes=[HUGE_NOTE],
            ),
        ),
        id="huge.a3-10mb-keyerror-quoting-timed-out",
    ),
    pytest.param(
        jsonl(
            a3_started(0, "blob_lines")
            + a3_failed(
                1,
                exc(
                    "psycopg2.errors.UniqueViolation",
                    "duplicate key value violates unique constraint "
                    '"blobs_pkey"\nDETAIL:  Key (id)=('
                    + huge(10 * 1024 * 1024, "503 ")
                    + ") already exists.",
                    ("/opt/airflow/dags/blob_lines.py", 9, "store"),
                ),
            )
            + [rec(2, "Marking task as FAILED. dag_id=blob_lines", "info", "airflow.task")]
        ),
        id="huge.a3jsonl-10mb-unique-violation",
    ),
    # -- notes -----------------------------------------------------------------------------------
    pytest.param(
        a3_started(0, "loader")
        + a3_failed(
            1,
            exc(
                "psycopg2.errors.UniqueViolation",
                'duplicate key value violates unique constraint "load_pkey"',
                ("/opt/airflow/dags/loader.py", 30, "load"),
                notes=["while loading batch 2026-11-20/7 after a connection reset on batch 6"],
            ),
        ),
        id="notes.a3-unique-note-connection-reset",
    ),
    pytest.param(
        started(0, "reports", "render_report")
        + task_failed(
            1,
            tb(
                "TypeError: unsupported operand type(s) for +: 'int' and 'str'\n"
                "while rendering section 'latency' (the upstream had timed out earlier)",
                dag_frame("reports", 77, "render_report", "total = base + extra"),
            ),
        ),
        id="notes.a2-typeerror-note-timed-out",
    ),
]

TRANSIENT_CONTROLS = [
    pytest.param(
        started(0, "vendor", "pull_orders")
        + task_failed(
            1,
            tb(
                "requests.exceptions.HTTPError: 503 Server Error: Service Unavailable for url: "
                "https://api.vendor.example/v2/orders?page=3",
                dag_frame("vendor", 31, "pull_page", "resp.raise_for_status()"),
            ),
        ),
        id="control.a2-clean-503",
    ),
    pytest.param(
        a3_started(0, "stream")
        + a3_failed(
            1,
            exc(
                "ConnectionResetError",
                "[Errno 104] Connection reset by peer",
                ("/opt/airflow/dags/stream.py", 12, "read_chunk"),
            ),
        ),
        id="control.a3-clean-connection-reset",
    ),
    pytest.param(
        started(0, "warehouse", "refresh")
        + task_failed(
            1,
            tb(
                "psycopg2.OperationalError: server closed the connection unexpectedly\n"
                "\tThis probably means the server terminated abnormally\n"
                "\tbefore or while processing the request.",
                dag_frame("warehouse", 22, "refresh", "cur.execute(REFRESH_SQL)"),
                *PSYCOPG2_CONNECT_FRAMES,
            ),
        ),
        id="control.a2-clean-server-closed",
    ),
    pytest.param(
        started(0, "sync", "sync_repo")
        + subprocess_output(
            1,
            "git fetch origin",
            "fatal: unable to access 'https://git.example.com/acme/etl.git/': Connection reset by peer",
        )
        + bash_failed(2),
        id="control.a2-bash-clean-reset",
    ),
]


def kind_of(case_id: str) -> str:
    """The kind of a case id (`KINDS`): the part before the first dot."""
    return case_id.split(".", 1)[0]

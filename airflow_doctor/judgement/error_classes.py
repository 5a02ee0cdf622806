"""The error classes the offline rules name: one vocabulary for rules.py, catalogue.py and disputes.py.

`ErrorClass` is a `StrEnum`: a member is the string it names (`ErrorClass.db_deadlock ==
"db_deadlock"`, the same hash, the same f-string), so it compares equal to what the knowledge base
stores (`doctor.failure_cases.error_class`), what the runbook entries and the eval corpora label, and
what a Diagnosis carries; JSON, pydantic and psycopg write it as that string. The vocabulary binds the
rules, not the LLM: a diagnosis may name a class that is not here (it is then no class of the
catalogue, and never retry-safe by the rules). Renaming a member renames a stored value: add, never
rename.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorClass(StrEnum):
    """Every class a rule of rules.py reads an error as (grouped as the rule table is)."""

    # Airflow itself: its execution API, its task supervisor, its scheduler
    execution_api_race = "execution_api_race"
    orm_access_forbidden = "orm_access_forbidden"
    worker_lost = "worker_lost"
    task_terminated = "task_terminated"
    sensor_timeout = "sensor_timeout"
    # compute and its resources
    oom_killed_sigkill = "oom_killed_sigkill"
    disk_full = "disk_full"
    native_crash = "native_crash"
    remote_capacity_unavailable = "remote_capacity_unavailable"
    resource_quota_too_small = "resource_quota_too_small"
    pod_start_timeout = "pod_start_timeout"
    concurrent_update_conflict = "concurrent_update_conflict"
    docker_socket_missing = "docker_socket_missing"
    container_config_error = "container_config_error"
    # credentials, permissions and configuration
    invalid_credentials = "invalid_credentials"
    missing_credentials = "missing_credentials"
    file_permission_denied = "file_permission_denied"
    access_denied = "access_denied"
    missing_airflow_connection = "missing_airflow_connection"
    missing_airflow_variable = "missing_airflow_variable"
    connection_misconfigured = "connection_misconfigured"
    connection_refused_localhost = "connection_refused_localhost"
    tls_certificate_error = "tls_certificate_error"
    api_quota_exhausted = "api_quota_exhausted"
    # databases
    db_deadlock = "db_deadlock"
    lock_contention = "lock_contention"
    db_serialization_failure = "db_serialization_failure"
    statement_timeout = "statement_timeout"
    db_connection_limit = "db_connection_limit"
    db_failover = "db_failover"
    db_connection_lost = "db_connection_lost"
    # the network and remote services
    dns_resolution_failure = "dns_resolution_failure"
    connection_refused = "connection_refused"
    service_unreachable = "service_unreachable"
    connection_reset_by_remote = "connection_reset_by_remote"
    ssl_eof_error = "ssl_eof_error"
    http_5xx_server_error = "http_5xx_server_error"
    http_request_rejected = "http_request_rejected"
    rate_limited = "rate_limited"
    kafka_broker_unavailable = "kafka_broker_unavailable"
    network_timeout = "network_timeout"
    # code, data and templates
    module_not_found = "module_not_found"
    template_not_found = "template_not_found"
    jinja_template_error = "jinja_template_error"
    executable_not_found = "executable_not_found"
    sql_syntax_error = "sql_syntax_error"
    duplicate_key_violation = "duplicate_key_violation"
    data_type_conversion_error = "data_type_conversion_error"
    data_parse_error = "data_parse_error"
    missing_object = "missing_object"
    task_code_error = "task_code_error"
    data_quality_check_failed = "data_quality_check_failed"

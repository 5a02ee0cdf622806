"""The offline diagnoser: rules in order, memory first, and the two checking each other."""

from __future__ import annotations

import pytest

from airflow_doctor.judgement.diagnosis import diagnose_offline
from airflow_doctor.judgement.rules import match_rule
from airflow_doctor.models import Action, Neighbour


@pytest.mark.parametrize(
    ("subject", "error_class", "transient"),
    [
        pytest.param(
            "socket.gaierror: [Errno -3] Temporary failure in name resolution",
            "dns_resolution_failure",
            True,
            id="dns-hiccup",
        ),
        pytest.param(
            "socket.gaierror: [Errno -2] Name or service not known",
            "connection_misconfigured",
            False,
            id="unknown-host-is-not-a-hiccup",
        ),
        pytest.param("HTTPError: 429 Client Error: Too Many Requests", "rate_limited", True, id="throttle"),
        pytest.param(
            "HTTPError: 429 Client Error: You have exceeded your daily quota",
            "api_quota_exhausted",
            False,
            id="quota-is-not-a-throttle",
        ),
        pytest.param("SSLError: EOF occurred in violation of protocol", "ssl_eof_error", True, id="tls-eof"),
        pytest.param(
            "SSLCertVerificationError: certificate verify failed: self-signed",
            "tls_certificate_error",
            False,
            id="bad-certificate",
        ),
        pytest.param(
            'OperationalError: FATAL: password authentication failed for user "x"',
            "invalid_credentials",
            False,
            id="credentials-before-connection",
        ),
        pytest.param("Task exited with return code -9", "oom_killed_sigkill", False, id="sigkill"),
        pytest.param("OSError: [Errno 28] No space left on device", "disk_full", False, id="disk-full"),
        pytest.param(
            "psycopg2.errors.DeadlockDetected: deadlock detected", "db_deadlock", True, id="deadlock"
        ),
        pytest.param("KeyError: 'id'", "task_code_error", False, id="code-bug"),
    ],
)
def test_rules(subject, error_class, transient):
    exc, _, msg = subject.partition(": ")
    rule = match_rule(exc, msg)
    assert rule is not None and (rule.error_class, rule.transient) == (error_class, transient)


def test_a_generic_error_defers_to_its_specific_cause():
    rule = match_rule(
        "ValueError", "Failed to fetch", ["ConnectionResetError: [Errno 104] Connection reset by peer"]
    )
    assert rule.error_class == "connection_reset_by_remote"


def neighbour(similarity: float, transient: bool, kind: str = "runbook") -> Neighbour:
    return Neighbour(
        case_id=1,
        kind=kind,
        similarity=similarity,
        error_class="x",
        transient=transient,
        recommended_action=Action.retry if transient else Action.notify,
    )


REFUSED = {
    "exception_type": "ConnectionRefusedError",
    "message": "[Errno 111] Connection refused",
    "text": "",
}


def test_memory_and_rule_agreeing_raise_confidence():
    d = diagnose_offline(REFUSED, [neighbour(0.9, True)], [], 0.82)
    assert d.transient and d.confidence == pytest.approx(0.95)


def test_an_observed_case_of_the_same_class_and_the_rule_disagreeing_is_not_confident():
    # A person's "permanent" for a similar refusal (a service that is gone) against the rule's "transient".
    gone = neighbour(0.9, False, kind="observed").model_copy(update={"error_class": "connection_refused"})
    d = diagnose_offline(REFUSED, [gone], [], 0.82)
    assert d.confidence == 0.5 and "disagree" in d.root_cause


def test_a_similar_observed_case_of_another_class_does_not_override_the_error_s_words():
    # A person's "permanent" for a 403 of the same API reads like this 503; the rule read the code.
    unavailable = {
        "exception_type": "botocore.exceptions.ClientError",
        "message": "An error occurred (503) when calling the HeadObject operation: Service Unavailable",
        "text": "",
    }
    forbidden = neighbour(0.9, False, kind="observed").model_copy(update={"error_class": "access_denied"})
    d = diagnose_offline(unavailable, [forbidden], [], 0.82)
    assert d.transient and d.error_class == "http_5xx_server_error" and d.confidence == pytest.approx(0.8)
    assert "observed case of access_denied reads alike" in d.root_cause
    # The same case with this very fingerprint is what happened to this error: it outweighs the rule.
    known = forbidden.model_copy(update={"outcome": "escalated"})
    d = diagnose_offline(unavailable, [known], [known], 0.82)
    assert not d.transient


def test_a_similar_runbook_case_of_another_class_does_not_override_the_error_s_words():
    # An S3 503 reads like the 403 runbook entry (same API error format); the rule read the code.
    unavailable = {
        "exception_type": "botocore.exceptions.ClientError",
        "message": "An error occurred (503) when calling the GetObject operation: Service Unavailable",
        "text": "",
    }
    d = diagnose_offline(unavailable, [neighbour(0.9, False)], [], 0.82)
    assert d.transient and d.error_class == "http_5xx_server_error" and d.confidence == pytest.approx(0.8)
    assert "reads alike" in d.root_cause
    denied = {"exception_type": "ClientError", "message": "An error occurred (AccessDenied) ...", "text": ""}
    d = diagnose_offline(denied, [neighbour(0.9, True)], [], 0.82)
    assert not d.transient and d.error_class == "access_denied"


def test_rule_alone_keeps_its_own_confidence_and_unknown_is_low():
    assert diagnose_offline(REFUSED, [neighbour(0.5, False)], [], 0.82).confidence == pytest.approx(0.8)
    unknown = diagnose_offline({"exception_type": "FooBarError", "message": "zzz", "text": ""}, [], [], 0.82)
    assert unknown.error_class == "unknown_error" and unknown.confidence == 0.2 and not unknown.transient


def test_a_recognised_case_s_root_cause_says_recognised_once():
    # An observed case's title is the root cause of its own diagnosis, which memory may have made.
    earlier = neighbour(1.0, False, kind="observed").model_copy(
        update={
            "error_class": "task_code_error",
            "title": "Recognised from memory (a runbook case is 0.97 similar): The task's own code raised an error.",
        }
    )
    key_error = {"exception_type": "KeyError", "message": "'customer_id'", "text": ""}
    d = diagnose_offline(key_error, [earlier], [earlier], 0.82)
    assert d.root_cause.count("Recognised from memory") == 1
    assert d.root_cause.endswith(": The task's own code raised an error.")

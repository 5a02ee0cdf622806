"""FailureRef: strict validation whose errors name the field and the rule, never echoing the value."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from airflow_doctor.models import FailureRef, describe_errors

GOOD = {"dag_id": "etl", "run_id": "scheduled__2026-01-01T00:00:00+00:00", "task_id": "load", "try_number": 1}


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        pytest.param("dag_id", "", "at least 1 character", id="empty-dag-id"),
        pytest.param("run_id", "", "at least 1 character", id="empty-run-id"),
        pytest.param("task_id", "", "at least 1 character", id="empty-task-id"),
        pytest.param("dag_id", "   ", "other than whitespace", id="spaces-dag-id"),
        pytest.param("run_id", "\u3000\u00a0", "other than whitespace", id="wide-spaces-run-id"),
        pytest.param("task_id", "\u200b", "other than whitespace", id="zero-width-task-id"),
        pytest.param("dag_id", "d" * 1_000_000, "at most 250 characters", id="1mb-dag-id"),
        pytest.param("task_id", "t" * 251, "at most 250 characters", id="251-char-task-id"),
        pytest.param("run_id", "manual__1\x00", "control characters (found U+0000)", id="nul-in-run-id"),
        pytest.param("dag_id", "etl\x1b[31m", "control characters (found U+001B)", id="esc-in-dag-id"),
        pytest.param("task_id", "load\nretry", "control characters (found U+000A)", id="newline-in-task-id"),
        pytest.param("run_id", "r\x85", "control characters (found U+0085)", id="c1-control-in-run-id"),
        pytest.param("task_id", "t\ud800", "valid string", id="lone-surrogate-in-task-id"),
        pytest.param("dag_id", 5, "valid string", id="int-dag-id"),
        pytest.param("run_id", ["r"], "valid string", id="list-run-id"),
        pytest.param("try_number", 0, "greater than or equal to 1", id="try-number-zero"),
        pytest.param("try_number", -3, "greater than or equal to 1", id="negative-try-number"),
        pytest.param("try_number", 1.7, "fractional part", id="fractional-try-number"),
        pytest.param("try_number", 2**40, "less than 2147483648", id="try-number-beyond-postgres-integer"),
        pytest.param("try_number", 2**31, "less than 2147483648", id="try-number-2-to-the-31"),
        pytest.param("try_number", True, "not a boolean", id="bool-try-number"),
        pytest.param("try_number", "abc", "unable to parse string as an integer", id="abc-try-number"),
        pytest.param("try_number", [1], "valid integer", id="list-try-number"),
        pytest.param("try_number", {"n": 1}, "valid integer", id="dict-try-number"),
        pytest.param("try_number", None, "valid integer", id="none-try-number"),
        pytest.param("map_index", -5, "greater than or equal to -1", id="map-index-minus-5"),
        pytest.param("map_index", 2**40, "less than 2147483648", id="map-index-2-to-the-40"),
        pytest.param("map_index", False, "not a boolean", id="bool-map-index"),
        pytest.param("map_index", 0.5, "fractional part", id="fractional-map-index"),
        pytest.param("map_index", [0], "valid integer", id="list-map-index"),
        pytest.param("map_index", {"i": 0}, "valid integer", id="dict-map-index"),
        pytest.param("map_index", "x", "unable to parse string as an integer", id="abc-map-index"),
        pytest.param("source", "attacker", "'listener', 'sweeper' or 'manual'", id="unknown-source"),
    ],
)
def test_a_bad_field_gets_an_error_naming_the_field_and_the_rule(field, value, rule):
    with pytest.raises(ValidationError) as caught:
        FailureRef.model_validate({**GOOD, field: value})

    message = describe_errors(caught.value)
    assert message.startswith(f"{field}: "), message
    assert rule in message, message
    assert len(message) < 200  # the value itself (up to 1 MB here) is not echoed


def test_a_missing_field_is_named():
    with pytest.raises(ValidationError) as caught:
        FailureRef.model_validate({"dag_id": "etl"})
    assert describe_errors(caught.value) == (
        "run_id: Field required; task_id: Field required; try_number: Field required"
    )


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        pytest.param("try_number", "3", 3, id="numeric-string-try-number"),
        pytest.param("try_number", 3.0, 3, id="whole-float-try-number"),
        pytest.param("try_number", 2**31 - 1, 2**31 - 1, id="largest-postgres-integer"),
        pytest.param("map_index", "-1", -1, id="numeric-string-map-index"),
        pytest.param("map_index", 0, 0, id="first-mapped-instance"),
        pytest.param("dag_id", "d" * 250, "d" * 250, id="250-char-dag-id"),
        pytest.param("run_id", "manual__2026-01-01T00:00:00+00:00 ünïcode", None, id="unicode-run-id"),
    ],
)
def test_values_airflow_would_accept_are_accepted(field, value, expected):
    ref = FailureRef.model_validate({**GOOD, field: value})
    assert getattr(ref, field) == (value if expected is None else expected)


def test_every_error_of_a_ref_is_reported_at_once():
    with pytest.raises(ValidationError) as caught:
        FailureRef.model_validate({**GOOD, "run_id": "r\x00", "map_index": 2**40, "try_number": True})
    assert describe_errors(caught.value) == (
        "run_id: Value error, must not contain control characters (found U+0000); "
        "map_index: Input should be less than 2147483648; "
        "try_number: Value error, must be an integer, not a boolean"
    )


def test_task_history_counts_a_change_of_dag_version_or_of_bundle_version_since_the_last_success():
    from airflow_doctor.models import TaskHistory, TryRecord

    def ok(version: int, bundle: str | None = None) -> TryRecord:
        return TryRecord(
            run_id=f"r{version}{bundle}",
            try_number=1,
            state="success",
            dag_version=version,
            bundle_version=bundle,
        )

    same = TaskHistory(failed_version=3, recent=[ok(3), ok(3)], last_success=ok(3))
    assert not same.changed_since_success and same.successes_on_version == 2
    newer = TaskHistory(failed_version=4, recent=[ok(3)], last_success=ok(3))
    assert newer.changed_since_success and newer.successes_on_version == 0
    moved = TaskHistory(
        failed_version=3, failed_bundle_version="b2", recent=[ok(3, "b1")], last_success=ok(3, "b1")
    )
    assert moved.changed_since_success and moved.successes_on_version == 0
    assert not TaskHistory(failed_version=3).changed_since_success  # never succeeded: no change known

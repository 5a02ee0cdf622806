"""Fingerprints are stable across volatile details and distinct across causes."""

from __future__ import annotations

import pytest

from airflow_doctor.logs.fingerprint import fingerprint

SAME = [
    pytest.param(
        ("OperationalError", 'connection to server at "10.0.0.5", port 5432 failed: Connection refused'),
        (
            "psycopg2.OperationalError",
            'connection to server at "10.9.8.7", port 6543 failed: Connection refused',
        ),
        id="ip-port-and-module-prefix",
    ),
    pytest.param(
        (
            "ReadTimeout",
            "HTTPSConnectionPool(host='a.example.com', port=443): Read timed out. (read timeout=30)",
        ),
        (
            "ReadTimeout",
            "HTTPSConnectionPool(host='b.example.com', port=8443): Read timed out. (read timeout=60)",
        ),
        id="host-and-durations",
    ),
    pytest.param(
        ("FileNotFoundError", "[Errno 2] No such file or directory: '/data/2024-01-01/part-0001.csv'"),
        ("FileNotFoundError", "[Errno 2] No such file or directory: '/data/2025-03-07/part-0042.csv'"),
        id="paths-with-dates",
    ),
    pytest.param(
        ("ValueError", "expected 1500 rows, got 1499 at 2024-01-01T10:00:00Z"),
        ("ValueError", "expected 2000 rows, got 12 at 2025-02-02T11:11:11+00:00"),
        id="row-counts-and-timestamps",
    ),
    pytest.param(
        ("RuntimeError", "job 3f2b9c1e-8d3a-4c55-9a0b-1e2f3a4b5c6d failed"),
        ("RuntimeError", "job 0a1b2c3d-4e5f-6789-abcd-ef0123456789 failed"),
        id="uuids",
    ),
]

DIFFERENT = [
    pytest.param(("KeyError", "'customer_id'"), ("KeyError", "'order_id'"), id="different-missing-key"),
    pytest.param(
        ("OperationalError", "Connection refused"),
        ("OperationalError", "password authentication failed"),
        id="same-type-different-cause",
    ),
    pytest.param(("TimeoutError", "timed out"), ("ConnectionResetError", "timed out"), id="different-type"),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_same_failure_same_fingerprint(a, b):
    assert fingerprint(*a) == fingerprint(*b)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_cause_different_fingerprint(a, b):
    assert fingerprint(*a) != fingerprint(*b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param(
            ("HTTPError", "403 Client Error: Forbidden for url: https://a/b"),
            ("HTTPError", "503 Server Error: Service Unavailable for url: https://a/b"),
            id="http-status-kept",
        ),
        pytest.param(
            ("", "Task exited with return code -9"),
            ("", "Task exited with return code 1"),
            id="exit-code-kept",
        ),
        pytest.param(
            ("OSError", "[Errno 28] No space left on device"),
            ("OSError", "[Errno 13] No space left on device"),
            id="errno-kept",
        ),
    ],
)
def test_meaningful_numbers_are_kept(a, b):
    assert fingerprint(*a) != fingerprint(*b)


def test_driver_class_in_parentheses_is_reduced_to_its_name():
    assert fingerprint(
        "sqlalchemy.exc.OperationalError", "(psycopg2.OperationalError) server closed"
    ) == fingerprint("OperationalError", "(OperationalError) server closed")


def test_short_hex_ids_are_volatile_but_words_are_not():
    a = fingerprint("JobFailed", "job 3f9a2c1 on runner a1b2c3d4e failed")
    b = fingerprint("JobFailed", "job 77e0b9d on runner 0f9e8d7c6 failed")
    assert a == b
    assert fingerprint("KeyError", "'deadbeef'") != fingerprint("KeyError", "'facade'")

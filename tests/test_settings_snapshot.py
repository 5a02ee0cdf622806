"""Settings are read once per doctor run (fetch_logs) and carried to the run's later tasks."""

from __future__ import annotations

import pytest

from airflow_doctor import settings as config


@pytest.fixture(autouse=True)
def fresh_cache():
    config._cache.clear()
    yield
    config._cache.clear()


def test_a_primed_snapshot_is_used_without_reading_any_variable(monkeypatch):
    reads = []
    monkeypatch.setattr(config, "read_variable", lambda key: reads.append(key))
    snap = {**config.snapshot(), "confidence_threshold": 0.93, "email_to": ["a@example.com"], "unknown": 1}
    reads.clear()

    config.prime(snap)

    assert config.settings().confidence_threshold == 0.93
    assert config.settings().email_to == ["a@example.com"]
    assert reads == []


def test_an_environment_variable_set_later_wins_over_the_snapshot(monkeypatch):
    config.prime({**config.snapshot(), "max_auto_retries": 7})
    monkeypatch.setenv("AIRFLOW_VAR_DOCTOR_MAX_AUTO_RETRIES", "1")
    assert config.settings().max_auto_retries == 1


def test_a_value_of_the_wrong_type_in_the_snapshot_falls_back_to_the_default():
    defaults = config.DoctorSettings()
    config.prime(
        {"confidence_threshold": 0.5, "neighbours": "x", "enabled": "yes", "email_to": None, "no_such": 1}
    )
    got = config.settings()
    assert got.confidence_threshold == 0.5
    assert (got.neighbours, got.enabled, got.email_to) == (
        defaults.neighbours,
        defaults.enabled,
        defaults.email_to,
    )

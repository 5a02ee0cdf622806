"""The doctor's settings: the `[doctor]` config section, the four run-time Variables, malformed values,
the provider info Airflow reads, and the snapshot a doctor run carries to its later tasks."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import airflow
import jsonschema
import pytest

from airflow_doctor import settings as config
from airflow_doctor.provider_info import get_provider_info

RUN_TIME = {"enabled", "email_to", "recipients", "slack_connections"}


@pytest.fixture(autouse=True)
def fresh_cache():
    config._cache.clear()
    yield
    config._cache.clear()


# -- the [doctor] section ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        pytest.param("confidence_threshold", "0.9", 0.9, id="float"),
        pytest.param("max_auto_retries", "5", 5, id="integer"),
        pytest.param("local_services", "true", True, id="boolean-true"),
        pytest.param("memory_first", "False", False, id="boolean-false"),
        pytest.param("notify_on_retry", "both", "both", id="choice"),
        pytest.param("embedding_model", "/opt/models/minilm", "/opt/models/minilm", id="string"),
        pytest.param("storm_quiet_seconds", " 2 ", 2.0, id="blanks-around"),
    ],
)
def test_a_deployment_setting_is_read_from_the_doctor_config_section(monkeypatch, name, raw, expected):
    monkeypatch.setenv(f"AIRFLOW__DOCTOR__{name.upper()}", raw)
    assert getattr(config.settings(), name) == expected


def test_airflow_itself_knows_the_section_and_its_defaults(monkeypatch):
    from airflow.configuration import conf

    assert conf.get("doctor", "storm_threshold") == "3"
    assert conf.getfloat("doctor", "confidence_threshold") == config.DoctorSettings().confidence_threshold
    monkeypatch.setenv("AIRFLOW__DOCTOR__CONFIDENCE_THRESHOLD", "0.9")
    assert conf.getfloat("doctor", "confidence_threshold") == 0.9


def test_a_deployment_setting_set_as_a_variable_is_not_read(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_DOCTOR_CONFIDENCE_THRESHOLD", "0.99")
    assert config.settings().confidence_threshold == config.DoctorSettings().confidence_threshold


def test_unset_everything_is_the_declared_default(monkeypatch):
    monkeypatch.setattr(config, "read_variable", lambda key: None)
    assert config.settings() == config.DoctorSettings()


def test_the_parse_time_options_reach_the_dag_factories(monkeypatch):
    from airflow_doctor.dags import doctor_sweeper_dag

    monkeypatch.setenv("AIRFLOW__DOCTOR__SWEEPER_INTERVAL_MINUTES", "7")
    assert config.read_option("sweeper_interval_minutes") == 7.0
    assert doctor_sweeper_dag().schedule == timedelta(minutes=7)
    with pytest.raises(KeyError):
        config.read_option("email_to")  # a Variable, not an option


def test_the_embedding_service_url_is_an_option_and_the_old_variable_still_works(monkeypatch):
    from airflow_doctor.knowledge import embeddings

    called = []

    def service(url, texts, configured="", batch_size=32):
        called.append(url)
        return [[0.0] * config.EMBEDDING_DIM for _ in texts]

    monkeypatch.setattr(embeddings, "embed_via_service", service)
    monkeypatch.setenv("AIRFLOW__DOCTOR__EMBED_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("DOCTOR_EMBED_URL", "http://127.0.0.1:7")
    embeddings.embed(["one"])
    monkeypatch.delenv("AIRFLOW__DOCTOR__EMBED_URL")
    embeddings.embed(["two"])
    assert called == ["http://127.0.0.1:9", "http://127.0.0.1:7"]


# -- the run-time Variables --------------------------------------------------------------------------


def test_only_the_four_run_time_settings_are_variables():
    assert set(config.VARIABLES) == RUN_TIME
    assert set(config.OPTIONS) == {f for f in config.DoctorSettings.__dataclass_fields__} - RUN_TIME


def test_the_run_time_settings_are_read_from_their_variables(monkeypatch):
    values = {
        "doctor_enabled": "false",
        "doctor_email_to": "a@example.com, b@example.com",
        "doctor_recipients": json.dumps({"orders": ["orders@example.com"]}),
        "doctor_slack_connections": json.dumps({"team:data": "slack_data"}),
    }
    asked = []
    monkeypatch.setattr(config, "read_variable", lambda key: asked.append(key) or values.get(key))

    got = config.settings()

    assert sorted(asked) == sorted(values)  # one lookup each, none for the [doctor] options
    assert got.enabled is False
    assert got.email_to == ["a@example.com", "b@example.com"]
    assert got.recipients == {"orders": ["orders@example.com"]}
    assert got.slack_connections == {"team:data": "slack_data"}


def test_a_variable_keeps_its_environment_form(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_DOCTOR_EMAIL_TO", '["oncall@example.com"]')
    monkeypatch.setenv("AIRFLOW_VAR_DOCTOR_ENABLED", "off")
    got = config.settings()
    assert (got.email_to, got.enabled) == (["oncall@example.com"], False)


# -- malformed values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "name"),
    [
        pytest.param("AIRFLOW__DOCTOR__CONFIDENCE_THRESHOLD", "confidence_threshold", id="not-a-number"),
        pytest.param("AIRFLOW__DOCTOR__SIMILARITY_THRESHOLD", "similarity_threshold", id="above-1"),
        pytest.param("AIRFLOW__DOCTOR__NEIGHBOURS", "neighbours", id="zero-neighbours"),
        pytest.param("AIRFLOW__DOCTOR__MAX_AUTO_RETRIES", "max_auto_retries", id="integer-with-a-point"),
        pytest.param("AIRFLOW__DOCTOR__MEMORY_FIRST", "memory_first", id="not-a-boolean"),
        pytest.param("AIRFLOW__DOCTOR__NOTIFY_ON_RETRY", "notify_on_retry", id="not-a-choice"),
        pytest.param("AIRFLOW__DOCTOR__RETRY_BACKOFF_SECONDS", "retry_backoff_seconds", id="infinite"),
        pytest.param("AIRFLOW_VAR_DOCTOR_RECIPIENTS", "recipients", id="variable-not-json"),
        pytest.param("AIRFLOW_VAR_DOCTOR_SLACK_CONNECTIONS", "slack_connections", id="variable-a-list"),
        pytest.param("AIRFLOW_VAR_DOCTOR_ENABLED", "enabled", id="variable-not-a-boolean"),
    ],
)
def test_a_malformed_value_is_logged_and_replaced_by_its_default(monkeypatch, caplog, env, name):
    raw = {
        "confidence_threshold": "high",
        "similarity_threshold": "1.5",
        "neighbours": "0",
        "max_auto_retries": "2.5",
        "memory_first": "maybe",
        "notify_on_retry": "always",
        "retry_backoff_seconds": "inf",
        "recipients": "{orders: ops@example.com}",
        "slack_connections": '["slack_data"]',
        "enabled": "disabled",
    }[name]
    monkeypatch.setenv(env, raw)
    with caplog.at_level(logging.WARNING, logger="airflow_doctor.settings"):
        got = config.settings()
    assert getattr(got, name) == getattr(config.DoctorSettings(), name)
    assert "malformed" in caplog.text and name in caplog.text


def test_a_malformed_parse_time_option_gives_its_default(monkeypatch):
    monkeypatch.setenv("AIRFLOW__DOCTOR__APPROVAL_TIMEOUT_MINUTES", "an hour")
    assert config.read_option("approval_timeout_minutes") == 60.0


# -- the provider info ------------------------------------------------------------------------------


def test_the_provider_info_validates_against_airflows_schema():
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_the_config_section_is_the_declarations():
    airflow_types = {bool: "boolean", int: "integer", float: "float", str: "string"}
    section = get_provider_info()["config"]["doctor"]
    assert list(section["options"]) == list(config.OPTIONS)
    for name, declared in section["options"].items():
        setting = config.OPTIONS[name]
        assert declared["description"] == setting.description
        assert declared["type"] == airflow_types[setting.type]
        assert isinstance(declared["default"], str)
        assert config.parse(setting, declared["default"]) == setting.default, name


def test_every_setting_is_documented():
    options, variables = config.options_markdown(), config.variables_markdown()
    for setting in config.SETTINGS:
        assert setting.description
        table = variables if setting.variable else options
        assert f"`{setting.env}`" in table
    assert not options.endswith("\n") and not variables.endswith("\n")


# -- the snapshot a doctor run carries ----------------------------------------------------------------


def test_a_primed_snapshot_is_used_without_reading_any_variable(monkeypatch):
    reads = []
    monkeypatch.setattr(config, "read_variable", lambda key: reads.append(key))
    snap = {**config.snapshot(), "confidence_threshold": 0.93, "email_to": ["a@example.com"], "unknown": 1}
    reads.clear()

    config.prime(snap)

    assert config.settings().confidence_threshold == 0.93
    assert config.settings().email_to == ["a@example.com"]
    assert reads == []


@pytest.mark.parametrize(
    "env",
    [
        pytest.param("AIRFLOW__DOCTOR__MAX_AUTO_RETRIES", id="option"),
        pytest.param("AIRFLOW_VAR_DOCTOR_ENABLED", id="variable"),
    ],
)
def test_an_environment_variable_set_later_wins_over_the_snapshot(monkeypatch, env):
    config.prime({**config.snapshot(), "max_auto_retries": 7, "enabled": True})
    monkeypatch.setenv(env, "0")
    got = config.settings()
    assert (got.max_auto_retries, got.enabled) == ((0, True) if "__DOCTOR__" in env else (2, False))


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

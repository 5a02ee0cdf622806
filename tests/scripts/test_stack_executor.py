"""The local stack's executor option: settings per executor, the Redis broker, worker host names."""

from __future__ import annotations

import os
import signal
import socket

import pytest

from scripts import worker_hostname
from scripts.stack import StackConfig, airflow_env, start_redis
from tests.conftest import free_port


def test_an_unknown_executor_or_an_empty_celery_pool_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"executor must be one of \['celery', 'local'\], got 'kubernetes'"):
        StackConfig(executor="kubernetes")
    with pytest.raises(ValueError, match="celery_workers and celery_concurrency must be >= 1"):
        StackConfig(executor="celery", celery_workers=0)


def test_the_celery_executor_gets_the_stack_s_redis_broker_and_a_postgres_result_backend(tmp_path):
    cfg = StackConfig(state_dir=tmp_path, executor="celery", redis_port=6501, pg_port=5501, celery_workers=3)
    env = airflow_env(cfg)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6501/0"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql://postgres@127.0.0.1:5501/airflow"
    assert cfg.celery_worker_names == ["celery-worker-1", "celery-worker-2", "celery-worker-3"]


def test_the_local_executor_has_no_celery_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("AIRFLOW__CELERY__BROKER_URL", raising=False)
    env = airflow_env(StackConfig(state_dir=tmp_path))
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert not [k for k in env if k.startswith("AIRFLOW__CELERY__")]
    assert StackConfig(state_dir=tmp_path).celery_worker_names == []


def test_a_worker_reports_the_host_name_it_was_started_with_else_the_machine_s(monkeypatch):
    monkeypatch.setenv("DOCTOR_WORKER_HOSTNAME", "celery-worker-2")
    assert worker_hostname.hostname() == "celery-worker-2"
    monkeypatch.delenv("DOCTOR_WORKER_HOSTNAME")
    assert worker_hostname.hostname() == socket.getfqdn()


def test_the_broker_is_a_real_redis_on_loopback_that_keeps_nothing_on_disk(tmp_path):
    import redis

    cfg = StackConfig(state_dir=tmp_path, executor="celery", redis_port=free_port())
    pid = start_redis(cfg, dict(os.environ))["redis"]
    try:
        client = redis.Redis(host="127.0.0.1", port=cfg.redis_port, socket_timeout=5)
        client.rpush("default", "a message")
        assert client.lpop("default") == b"a message"
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("bind")["bind"] == "127.0.0.1"
    finally:
        os.killpg(pid, signal.SIGTERM)
    assert not list((tmp_path / "redis").iterdir())  # no dump.rdb, no appendonly file

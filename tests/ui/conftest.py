"""Fixtures for the Doctor UI's route tests: Airflow's own auth stack in process, with a real
metadata database (SQLite, migrated by `airflow db migrate`) and a real knowledge base (the embedded
Postgres of tests/conftest.py). Users are SimpleAuthManager users with real JWTs.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

JWT_SECRET = "doctor-ui-test-secret-" + "x" * 64
DAGS = {"example_dag": ["team-a", "nightly"], "other_dag": ["team-b"]}


@pytest.fixture(scope="session")
def airflow_db(tmp_path_factory):
    """Point this process's Airflow at a freshly migrated SQLite metadata DB with two DAGs and tags."""
    from airflow import settings
    from airflow.configuration import conf

    home = tmp_path_factory.mktemp("airflow_home")
    url = f"sqlite:///{home}/airflow.db"
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url}
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    saved = {
        ("database", "sql_alchemy_conn"): conf.get("database", "sql_alchemy_conn"),
        ("api_auth", "jwt_secret"): conf.get("api_auth", "jwt_secret", fallback=""),
        ("api", "base_url"): conf.get("api", "base_url", fallback=""),
    }
    old_conn = settings.SQL_ALCHEMY_CONN
    conf.set("database", "sql_alchemy_conn", url)
    conf.set("api_auth", "jwt_secret", JWT_SECRET)
    settings.SQL_ALCHEMY_CONN = url
    settings.dispose_orm()
    settings.configure_orm()

    from airflow.models.dag import DagModel, DagTag
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.add(DagBundleModel(name="dags-folder"))
        session.flush()
        for dag_id, tags in DAGS.items():
            session.add(DagModel(dag_id=dag_id, bundle_name="dags-folder"))
            session.flush()
            for tag in tags:
                session.add(DagTag(name=tag, dag_id=dag_id))
    yield url
    settings.dispose_orm()
    for (section, key), value in saved.items():
        conf.set(section, key, value)
    settings.SQL_ALCHEMY_CONN = old_conn
    settings.configure_orm()


@pytest.fixture(scope="session")
def auth_manager(airflow_db):
    from airflow.api_fastapi.app import init_auth_manager

    return init_auth_manager()


@pytest.fixture(scope="session")
def tokens(auth_manager):
    """A JWT for an admin, a 'user' (may edit task instances), a viewer (may only read) and a role-less user."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return {
        role: auth_manager.generate_jwt(SimpleAuthManagerUser(username=f"{role}-person", role=role))
        for role in ("admin", "user", "viewer")
    } | {"nobody": auth_manager.generate_jwt(SimpleAuthManagerUser(username="nobody", role=None))}


@pytest.fixture
def ui_client(auth_manager, kb_dsn, monkeypatch):
    """A TestClient on the Doctor app mounted at /doctor of an app, as the API server mounts it."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from airflow_doctor.plugins import DoctorUIPlugin

    monkeypatch.setenv("DOCTOR_UI_DSN", kb_dsn)
    root = FastAPI()
    spec = DoctorUIPlugin.fastapi_apps[0]
    root.mount(spec["url_prefix"], spec["app"])
    root.state.auth_manager = auth_manager
    with TestClient(root, base_url="http://testserver") as client:
        yield client

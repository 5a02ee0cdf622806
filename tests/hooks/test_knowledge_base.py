"""The knowledge base's connection as a hook: a libpq DSN built through the Postgres provider, used
against the embedded Postgres with pgvector (tests/conftest.py)."""

from __future__ import annotations

import json

import psycopg2
import pytest
from psycopg2.extensions import parse_dsn

from airflow_doctor.hooks.knowledge_base import KnowledgeBaseHook
from airflow_doctor.knowledge.store import KnowledgeBase
from airflow_doctor.models import FailureRef


def _postgres_connection(monkeypatch, conn_id: str, **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "postgres", **fields}))


def test_the_dsn_reaches_the_knowledge_base_and_the_store_uses_it(doctor_db_conn):
    hook = KnowledgeBaseHook()
    dsn = hook.get_dsn()
    assert "postgresql+psycopg" not in dsn and "://" not in dsn  # libpq key=value, not a SQLAlchemy URI
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT extname FROM pg_extension WHERE extname = 'vector'")
        assert cur.fetchone() == ("vector",)
    conn.close()

    ref = FailureRef(dag_id="etl", run_id="r1", task_id="load", try_number=1)
    KnowledgeBase().record_failures([ref])  # no DSN given: the doctor_db connection, through the hook
    assert [c.dag_id for c in KnowledgeBase(dsn=doctor_db_conn).claim_failures("doc")] == ["etl"]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            {"host": "kb", "port": 6543, "login": "doctor", "password": "p@ss w/ord:'x'", "schema": "doctor"},
            {
                "host": "kb",
                "port": "6543",
                "user": "doctor",
                "password": "p@ss w/ord:'x'",
                "dbname": "doctor",
            },
            id="every-field-with-a-hard-password",
        ),
        pytest.param(
            {"host": "kb"}, {"host": "kb", "dbname": "postgres"}, id="database-defaults-to-postgres"
        ),
        pytest.param(
            {"host": "kb", "schema": "doctor", "extra": {"sslmode": "verify-full", "cursor": "dictcursor"}},
            {"host": "kb", "dbname": "doctor", "sslmode": "verify-full"},
            id="libpq-extras-kept-provider-options-dropped",
        ),
    ],
)
def test_the_dsn_holds_the_connection_as_libpq_reads_it(monkeypatch, fields, expected):
    _postgres_connection(monkeypatch, "doctor_db_case", **fields)
    assert parse_dsn(KnowledgeBaseHook(doctor_conn_id="doctor_db_case").get_dsn()) == expected


def test_a_missing_connection_is_named():
    from airflow.exceptions import AirflowNotFoundException

    with pytest.raises(AirflowNotFoundException, match="doctor_db_missing"):
        KnowledgeBaseHook(doctor_conn_id="doctor_db_missing").get_dsn()

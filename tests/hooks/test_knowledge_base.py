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
    hook = KnowledgeBaseHook(doctor_conn_id="doctor_db_case")
    assert parse_dsn(hook.get_dsn()) == expected
    # Read without the provider's hook, it is the DSN the provider's PostgresHook gives.
    assert parse_dsn(hook._dsn_through_postgres_hook()) == expected


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"sqlalchemy_query": {"sslmode": "require", "application_name": "doctor"}}, id="query"),
        pytest.param({"sqlalchemy_scheme": "postgresql", "keepalives": 1, "options": "-c x=1"}, id="options"),
        pytest.param({"aws_conn_id": "aws", "azure_conn_id": "az", "cursor": "realdictcursor"}, id="others"),
    ],
)
def test_the_dsn_is_the_providers_whatever_the_extras(monkeypatch, extra):
    _postgres_connection(monkeypatch, "doctor_db_case", host="kb", login="d", password="p", extra=extra)
    hook = KnowledgeBaseHook(doctor_conn_id="doctor_db_case")
    assert parse_dsn(hook.get_dsn()) == parse_dsn(hook._dsn_through_postgres_hook())


def test_the_provider_options_kept_out_of_the_dsn_are_the_providers():
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from airflow_doctor.hooks.knowledge_base import IGNORED_EXTRA_OPTIONS

    assert set(PostgresHook.ignored_extra_options) == IGNORED_EXTRA_OPTIONS


def test_an_iam_connection_takes_its_token_from_the_providers_hook(monkeypatch):
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    _postgres_connection(
        monkeypatch,
        "doctor_db_iam",
        host="kb",
        login="d",
        schema="doctor",
        extra={"iam": True, "sslmode": "require"},
    )
    monkeypatch.setattr(PostgresHook, "get_iam_token", lambda self, conn: ("iam_user", "a-token", 5433))
    dsn = parse_dsn(KnowledgeBaseHook(doctor_conn_id="doctor_db_iam").get_dsn())
    assert dsn == {
        "host": "kb",
        "port": "5433",
        "user": "iam_user",
        "password": "a-token",
        "dbname": "doctor",
        "sslmode": "require",
    }


def test_a_plain_connection_does_not_import_the_providers_hook(tmp_path):
    """The provider's hook imports psycopg 3, common.sql and sqlparse: a task process that only
    writes to the knowledge base (the failing task's listener) does not pay for them."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from airflow_doctor.hooks.knowledge_base import KnowledgeBaseHook\n"
        "KnowledgeBaseHook(doctor_conn_id='doctor_db_plain').get_dsn()\n"
        "print(sorted(m for m in sys.modules if m.startswith(('airflow.providers.postgres.hooks', 'psycopg.'))))"
    )
    conn = json.dumps({"conn_type": "postgres", "host": "kb", "login": "d", "password": "p"})
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"AIRFLOW_CONN_DOCTOR_DB_PLAIN": conn, "PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_missing_connection_is_named():
    from airflow.exceptions import AirflowNotFoundException

    with pytest.raises(AirflowNotFoundException, match="doctor_db_missing"):
        KnowledgeBaseHook(doctor_conn_id="doctor_db_missing").get_dsn()

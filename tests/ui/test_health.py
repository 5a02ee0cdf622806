"""The dashboard's integration health: real loopback SMTP and Slack receivers (tests/conftest.py) and a
loopback server answering Airflow's `/api/v2/monitor/health`, read through the doctor's REST client."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_doctor.ui import health

HEALTHY = {
    "metadatabase": {"status": "healthy"},
    "scheduler": {"status": "healthy", "latest_scheduler_heartbeat": "2026-01-01T00:00:00+00:00"},
    "triggerer": {"status": "unhealthy", "latest_triggerer_heartbeat": None},
    "dag_processor": {"status": "healthy", "latest_dag_processor_heartbeat": None},
}


class _Health(BaseHTTPRequestHandler):
    seen: list = []
    status = 200

    def do_GET(self):  # noqa: N802
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        data = json.dumps(HEALTHY).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def api_server():
    _Health.seen, _Health.status = [], 200
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.setattr(health, "_cache", {"at": 0.0, "result": None})


def test_the_dashboard_shows_each_integration_as_it_is_now(sinks, api_server, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_DOCTOR_LLM", raising=False)
    assert health.probe(api_server) == {
        "LLM": "not configured",
        "SMTP": "reachable",
        "Slack": "reachable",
        "Airflow": "metadatabase healthy, scheduler healthy, triggerer unhealthy, dag_processor healthy",
    }
    assert _Health.seen == [("/api/v2/monitor/health", None)]  # the open endpoint: no credential sent


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param(503, "unreachable (HTTP 503)", id="api-server-error"),
        pytest.param(None, "unreachable (ConnectError)", id="api-server-down"),
    ],
)
def test_an_unhealthy_api_server_is_reported_not_raised(api_server, status, expected):
    from tests.conftest import free_port

    _Health.status = status or 200
    url = api_server if status else f"http://127.0.0.1:{free_port()}"  # nothing listens on a free port
    assert health.probe(url)["Airflow"] == expected
    assert len(_Health.seen) == (1 if status else 0)  # a page load waits for no retry

"""The embedding service, run as the stack runs it (`python -m airflow_doctor.knowledge.embed_service`), and
the two paths of `embeddings.embed`: warm through the service, cold in this process."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from airflow_doctor.knowledge import embeddings
from airflow_doctor.knowledge.runbooks import embedding_text, load_runbooks
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [
    "ConnectionRefusedError: [Errno <n>] Connection refused",
    'psycopg2.errors.UndefinedTable: relation "orders_<n>" does not exist',
    "MemoryError",
    "a log without any exception, just the last lines of output",
]


@pytest.fixture(scope="module")
def service_url():
    """A real embedding service process on a free loopback port, for the module."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_doctor.knowledge.embed_service",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedding service did not start: {proc.stdout.read().decode()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)


def test_health_names_the_model_and_its_dimension(service_url):
    assert httpx.get(f"{service_url}/health").json() == {
        "status": "ok",
        "model": "all-MiniLM-L6-v2",
        "dimension": 384,
    }


def test_the_service_gives_the_in_process_vectors(service_url, monkeypatch, caplog):
    texts = TEXTS + [embedding_text(r["signature"]) for r in load_runbooks()[:40]]
    monkeypatch.setenv("DOCTOR_EMBED_URL", service_url)
    with caplog.at_level(logging.INFO, logger="airflow_doctor.knowledge.embeddings"):
        warm = embeddings.embed(texts)
    assert "with the embedding service" in caplog.text and "cold path" not in caplog.text
    cold = embeddings.encode(embeddings.load_model(), texts)
    assert len(warm) == len(texts) and all(len(v) == 384 for v in warm)
    assert min(cosine(w, c) for w, c in zip(warm, cold, strict=True)) >= 0.9999


def test_with_the_service_down_the_cold_path_still_embeds(monkeypatch, caplog):
    monkeypatch.setenv("DOCTOR_EMBED_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens
    with caplog.at_level(logging.INFO, logger="airflow_doctor.knowledge.embeddings"):
        [vector] = embeddings.embed([TEXTS[0]])
    assert "unusable (ConnectError" in caplog.text and "cold path" in caplog.text
    assert cosine(vector, embeddings.encode(embeddings.load_model(), [TEXTS[0]])[0]) >= 0.9999


def test_without_the_variable_the_cold_path_says_why(monkeypatch, caplog):
    monkeypatch.delenv("DOCTOR_EMBED_URL", raising=False)
    with caplog.at_level(logging.INFO, logger="airflow_doctor.knowledge.embeddings"):
        assert len(embeddings.embed([TEXTS[1]])[0]) == 384
    assert "cold path: [doctor] embed_url not set" in caplog.text


def test_a_service_holding_another_model_is_not_used(service_url, monkeypatch, caplog):
    resp = httpx.post(f"{service_url}/embed", json={"texts": ["x"], "model": "/models/other"})
    assert resp.status_code == 409 and "all-MiniLM-L6-v2" in resp.text
    with pytest.raises(embeddings.EmbedServiceError, match="HTTP 409"):
        embeddings.embed_via_service(service_url, ["x"], configured="/models/other")


@pytest.mark.parametrize(
    "body, detail",
    [
        pytest.param({"texts": []}, "at least 1 item", id="no-texts"),
        pytest.param({"texts": "one text"}, "valid list", id="not-a-list"),
        pytest.param({"texts": ["x" * 20_001]}, "texts[0] is longer than 20000", id="too-long"),
        pytest.param({"texts": ["x"], "batch_size": 0}, "greater than or equal to 1", id="bad-batch"),
    ],
)
def test_a_bad_request_gets_a_clear_422(service_url, body, detail):
    resp = httpx.post(f"{service_url}/embed", json=body)
    assert resp.status_code == 422 and detail in resp.text


def test_a_service_that_answers_garbage_is_not_trusted(monkeypatch):
    """A loopback server that answers 200 with the wrong number of vectors."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Wrong(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers["Content-Length"]))
            data = json.dumps({"model": "all-MiniLM-L6-v2", "vectors": [[0.0] * 384] * 3}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Wrong)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(embeddings.EmbedServiceError, match="expected 1 vector"):
            embeddings.embed_via_service(url, ["one"])
        monkeypatch.setenv("DOCTOR_EMBED_URL", url)
        [vector] = embeddings.embed(["one"])  # falls back to the model in this process
        assert any(vector)
    finally:
        server.shutdown()
        server.server_close()

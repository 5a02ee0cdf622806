"""The REST client against a loopback HTTP server that plays the Airflow API: tokens, retries,
timeouts, unreadable answers and the exact requests sent; the hook that builds it from a connection,
and the client acting as a person. The real API is exercised by the end-to-end tests (tests/e2e)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from airflow_doctor.hooks import airflow_api
from airflow_doctor.hooks.airflow_api import AirflowAPI, AirflowAPIError
from airflow_doctor.models import FailureRef

TI = {
    "dag_id": "etl",
    "dag_run_id": "manual__2026-01-01T00:00:00+00:00",
    "task_id": "load",
    "map_index": -1,
    "try_number": 2,
    "state": "failed",
    "note": None,
    "start_date": "2026-01-01T00:00:01.500000Z",
    "operator": "PythonOperator",
}


class FakeAirflow:
    """A loopback server: `routes[(method, path)]` answers (status, body, delay seconds); every
    request is recorded as (method, path, query dict, JSON body or None, Authorization header)."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Callable[[], tuple[int, object, float]]] = {}
        self.requests: list[tuple[str, str, dict, object, str | None]] = []
        self.tokens = iter(f"token-{n}" for n in range(1, 100))
        self.valid_tokens: set[str] = set()
        self.foreign_tokens: set[str] = set()  # signed with another secret (API server restarted)
        self.token_status = 201
        self.open_paths: set[str] = set()  # answered without a token, as /api/v2/monitor/health is
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                auth = self.headers.get("Authorization")
                path = unquote(url.path)
                fake.requests.append((self.command, path, parse_qs(url.query), body, auth))
                if path == "/auth/token":
                    token = next(fake.tokens)
                    fake.valid_tokens.add(token)
                    status, payload, delay = fake.token_status, {"access_token": token}, 0.0
                elif path in fake.open_paths and (self.command, path) in fake.routes:
                    status, payload, delay = fake.routes[(self.command, path)]()
                elif (auth or "").removeprefix("Bearer ") in fake.foreign_tokens:
                    status, payload, delay = 403, {"detail": "Invalid JWT token"}, 0.0
                elif (auth or "").removeprefix("Bearer ") not in fake.valid_tokens:
                    status, payload, delay = 401, {"detail": "Token Expired"}, 0.0
                elif (self.command, path) in fake.routes:
                    status, payload, delay = fake.routes[(self.command, path)]()
                else:
                    status, payload, delay = 404, {"detail": "no route"}, 0.0
                time.sleep(delay)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout tests)
                    pass

            do_GET = do_POST = do_PATCH = do_DELETE = _handle  # noqa: N815 - http.server names

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, method: str, path: str, *answers: tuple[int, object, float]) -> None:
        """Answer `method path` with these answers in turn, the last one for ever after."""
        queue = list(answers)
        self.routes[(method, path)] = lambda: queue.pop(0) if len(queue) > 1 else queue[0]

    def hits(self, method: str, path: str) -> int:
        return sum(1 for m, p, *_ in self.requests if (m, p) == (method, path))

    def revoke_tokens(self) -> None:
        self.valid_tokens.clear()


@pytest.fixture
def fake():
    server = FakeAirflow()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(airflow_api, "BACKOFF_SECONDS", 0.01)


def client(fake: FakeAirflow, **kwargs) -> AirflowAPI:
    return AirflowAPI(fake.url, "admin", "secret", **kwargs)


RUN_PATH = "/api/v2/dags/etl/dagRuns/manual__2026-01-01T00:00:00+00:00"
TI_PATH = f"{RUN_PATH}/taskInstances/load"


def test_a_task_instance_comes_back_as_plain_json_data_without_nulls(fake):
    fake.answer("GET", TI_PATH, (200, TI, 0))
    ti = client(fake).get_task_instance("etl", TI["dag_run_id"], "load")
    assert ti["state"] == "failed" and ti["try_number"] == 2 and ti["operator"] == "PythonOperator"
    assert "note" not in ti  # the official client's to_json() dropped nulls too
    assert ti["start_date"].startswith("2026-01-01T00:00:01.5")
    method, path, _, _, auth = fake.requests[-1]
    assert (method, path) == ("GET", TI_PATH) and auth == "Bearer token-1"
    assert [p for _, p, *_ in fake.requests] == ["/auth/token", TI_PATH]


def test_the_token_is_fetched_once_and_again_after_a_401(fake):
    fake.answer(
        "GET", RUN_PATH, (200, {"dag_id": "etl", "dag_run_id": TI["dag_run_id"], "state": "running"}, 0)
    )
    api = client(fake)
    api.get_dag_run("etl", TI["dag_run_id"])
    api.get_dag_run("etl", TI["dag_run_id"])
    assert fake.hits("POST", "/auth/token") == 1
    fake.revoke_tokens()  # the JWT expired
    assert api.get_dag_run("etl", TI["dag_run_id"])["state"] == "running"
    assert fake.hits("POST", "/auth/token") == 2
    assert fake.requests[-1][4] == "Bearer token-2"
    body = [b for m, p, _, b, _ in fake.requests if p == "/auth/token"][0]
    assert body == {"username": "admin", "password": "secret"}


def test_a_token_the_server_cannot_verify_is_replaced_once(fake):
    fake.answer("GET", "/api/v2/dags/etl", (200, {"dag_id": "etl"}, 0))
    api = client(fake)
    api.get_dag("etl")
    fake.foreign_tokens = set(fake.valid_tokens)
    assert api.get_dag("etl")["dag_id"] == "etl"
    assert fake.hits("POST", "/auth/token") == 2


def test_a_403_that_is_not_about_the_token_is_not_retried(fake):
    fake.answer("GET", "/api/v2/dags/etl", (403, {"detail": "Forbidden"}, 0))
    with pytest.raises(AirflowAPIError, match="HTTP 403") as err:
        client(fake).get_dag("etl")
    assert err.value.status == 403 and fake.hits("POST", "/auth/token") == 1


def test_a_401_after_a_fresh_token_is_an_error_not_a_loop(fake):
    fake.routes[("GET", RUN_PATH)] = lambda: (401, {"detail": "revoked"}, 0)
    fake.valid_tokens = type("All", (set,), {"__contains__": lambda self, _: True})()
    with pytest.raises(AirflowAPIError, match="HTTP 401") as err:
        client(fake).get_dag_run("etl", TI["dag_run_id"])
    assert err.value.status == 401
    assert fake.hits("POST", "/auth/token") == 2 and fake.hits("GET", RUN_PATH) == 2


def test_refused_credentials_say_so(fake):
    fake.token_status = 401
    with pytest.raises(AirflowAPIError, match="cannot get a token from .*/auth/token.*HTTP 401"):
        client(fake).get_dag("etl")


def test_a_503_on_a_read_is_retried_then_succeeds(fake):
    fake.answer("GET", "/api/v2/dags/etl", (503, {"detail": "restarting"}, 0), (200, {"dag_id": "etl"}, 0))
    assert client(fake).get_dag("etl")["dag_id"] == "etl"
    assert fake.hits("GET", "/api/v2/dags/etl") == 2


def test_a_5xx_that_persists_is_an_error_after_the_retries(fake):
    fake.answer("GET", "/api/v2/dags/etl", (502, b"<html>bad gateway</html>", 0))
    with pytest.raises(AirflowAPIError, match="HTTP 502: <html>bad gateway") as err:
        client(fake, retries=2).get_dag("etl")
    assert err.value.status == 502 and fake.hits("GET", "/api/v2/dags/etl") == 3


def test_a_500_is_not_retried(fake):
    fake.answer("GET", "/api/v2/dags/etl", (500, {"detail": "bug"}, 0))
    with pytest.raises(AirflowAPIError, match="HTTP 500"):
        client(fake).get_dag("etl")
    assert fake.hits("GET", "/api/v2/dags/etl") == 1


def test_a_post_is_never_sent_twice_after_a_503(fake):
    fake.answer("GET", "/api/v2/assets", (200, {"assets": [{"id": 7, "name": "doctor_task_failures"}]}, 0))
    fake.answer("POST", "/api/v2/assets/events", (503, {"detail": "busy"}, 0))
    ref = FailureRef(dag_id="etl", run_id="r", task_id="load", try_number=1)
    with pytest.raises(AirflowAPIError, match="HTTP 503"):
        client(fake).post_failure_event(ref)
    assert fake.hits("POST", "/api/v2/assets/events") == 1


def test_a_read_timeout_is_retried_then_reported(fake):
    fake.answer("GET", "/api/v2/dags/etl", (200, {"dag_id": "etl"}, 1.0))
    with pytest.raises(AirflowAPIError, match=r"ReadTimeout.*2 attempt\(s\), timeout 0.2s"):
        client(fake, timeout=0.2, retries=1).get_dag("etl")
    assert fake.hits("GET", "/api/v2/dags/etl") == 2


def test_an_unreachable_server_is_a_clear_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(AirflowAPIError, match=r"cannot get a token from .*ConnectError.*3 attempt\(s\)"):
        AirflowAPI(f"http://127.0.0.1:{port}", "a", "b", retries=2).get_dag("etl")


@pytest.mark.parametrize(
    "payload, message",
    [
        pytest.param(b"{not json", "HTTP 200 but the body is not JSON: '{not json'", id="malformed-json"),
        pytest.param({"state": "failed"}, "unexpected answer for TaskInstance", id="wrong-shape"),
        pytest.param([1, 2], "unexpected answer for TaskInstance", id="a-list"),
    ],
)
def test_an_unreadable_answer_is_a_clear_error(fake, payload, message):
    fake.answer("GET", TI_PATH, (200, payload, 0))
    with pytest.raises(AirflowAPIError, match=message):
        client(fake).get_task_instance("etl", TI["dag_run_id"], "load")


def test_request_json_is_the_raw_answer_and_a_bad_body_is_an_error(fake):
    fake.answer("GET", "/api/v2/version", (200, {"version": "3.3.2"}, 0))
    assert client(fake).request_json("GET", "/api/v2/version") == {"version": "3.3.2"}
    fake.answer("GET", "/api/v2/version", (200, b"<html>", 0))
    with pytest.raises(AirflowAPIError, match="not JSON"):
        client(fake).request_json("GET", "/api/v2/version")


def test_request_json_keeps_the_query_of_its_path(fake):
    """httpx drops a URL's own query when given empty params: the client must not pass them."""
    fake.answer("GET", "/api/v2/dags/~/dagRuns/~/taskInstances", (200, {"task_instances": []}, 0))
    client(fake).request_json(
        "GET", "/api/v2/dags/~/dagRuns/~/taskInstances?end_date_gte=2026-11-07&try_number=2&try_number=3"
    )
    _, _, query, _, _ = fake.requests[-1]
    assert query == {"end_date_gte": ["2026-11-07"], "try_number": ["2", "3"]}


def test_clear_sends_a_real_clear_of_the_mapped_instance_with_its_note(fake):
    fake.answer(
        "POST", "/api/v2/dags/etl/clearTaskInstances", (200, {"task_instances": [TI], "total_entries": 1}, 0)
    )
    ref = FailureRef(dag_id="etl", run_id=TI["dag_run_id"], task_id="load", map_index=3, try_number=2)
    cleared = client(fake).clear_task_instance(ref, note="x" * 1500)
    assert [c["task_id"] for c in cleared] == ["load"]
    body = fake.requests[-1][3]
    assert body["dry_run"] is False and body["only_failed"] is True and body["include_downstream"] is True
    assert body["dag_run_id"] == TI["dag_run_id"] and body["task_ids"] == [["load", 3]]
    assert len(body["note"]) == 1000


def test_notes_go_to_the_mapped_instance_with_an_update_mask(fake):
    fake.answer("PATCH", f"{TI_PATH}/4", (200, TI, 0))
    ref = FailureRef(dag_id="etl", run_id=TI["dag_run_id"], task_id="load", map_index=4, try_number=2)
    client(fake).set_task_instance_note(ref, "retried by the doctor")
    method, path, query, body, _ = fake.requests[-1]
    assert (method, path, query, body) == (
        "PATCH",
        f"{TI_PATH}/4",
        {"update_mask": ["note"]},
        {"note": "retried by the doctor"},
    )


def test_logs_follow_continuation_tokens(fake):
    pages = iter(
        [
            (200, {"content": [{"event": "one"}], "continuation_token": "next"}, 0),
            (200, {"content": [{"event": "two"}], "continuation_token": None}, 0),
        ]
    )
    fake.routes[("GET", f"{TI_PATH}/logs/2")] = lambda: next(pages)
    ref = FailureRef(dag_id="etl", run_id=TI["dag_run_id"], task_id="load", try_number=2)
    assert client(fake).get_log(ref) == [{"event": "one"}, {"event": "two"}]
    queries = [q for m, p, q, *_ in fake.requests if p.endswith("/logs/2")]
    assert queries[0] == {"full_content": ["true"]} and queries[1]["token"] == ["next"]


def test_ensure_pool_creates_only_a_missing_pool_and_tolerates_a_race(fake):
    fake.answer("GET", "/api/v2/pools/doctor_llm", (404, {"detail": "not found"}, 0))
    fake.answer("POST", "/api/v2/pools", (201, {"name": "doctor_llm", "slots": 2}, 0))
    assert client(fake).ensure_pool("doctor_llm", 2, "LLM calls") is True
    assert fake.requests[-1][3] == {
        "name": "doctor_llm",
        "slots": 2,
        "description": "LLM calls",
        "include_deferred": False,
    }
    fake.answer("POST", "/api/v2/pools", (409, {"detail": "exists"}, 0))
    assert client(fake).ensure_pool("doctor_llm", 2, "LLM calls") is False
    fake.answer("GET", "/api/v2/pools/doctor_llm", (200, {"name": "doctor_llm", "slots": 2}, 0))
    posts = fake.hits("POST", "/api/v2/pools")
    assert client(fake).ensure_pool("doctor_llm", 2, "LLM calls") is False
    assert fake.hits("POST", "/api/v2/pools") == posts


def test_run_ids_are_escaped_in_paths(fake):
    run_id = "manual__2026-01-01T00:00:00+00:00 odd?#id"
    fake.answer(
        "GET", f"/api/v2/dags/etl/dagRuns/{run_id}", (200, {"dag_id": "etl", "dag_run_id": run_id}, 0)
    )
    assert client(fake).get_dag_run("etl", run_id)["dag_run_id"] == run_id


def test_set_variable_overwrites_an_existing_one(fake):
    fake.answer("POST", "/api/v2/variables", (409, {"detail": "exists"}, 0))
    fake.answer("PATCH", "/api/v2/variables/threshold", (200, {"key": "threshold", "value": "0.9"}, 0))
    client(fake).set_variable("threshold", "0.9")
    assert fake.requests[-1][:4] == (
        "PATCH",
        "/api/v2/variables/threshold",
        {},
        {"key": "threshold", "value": "0.9"},
    )


# -- the hook: the client from a connection -------------------------------------------------------


def _api_connection(monkeypatch, conn_id: str = "doctor_airflow_api", **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "airflow_api", **fields}))


def test_the_hook_builds_one_client_from_the_connection_and_logs_in_with_its_account(fake, monkeypatch):
    from airflow_doctor.hooks.airflow_api import AirflowApiHook, default_api

    _api_connection(monkeypatch, host=fake.url, login="doctor", password="s3cret/+:@")
    fake.answer("GET", "/api/v2/dags/etl", (200, {"dag_id": "etl", "tags": [{"name": "x"}]}, 0))

    hook = AirflowApiHook()
    assert hook.client is hook.client  # built once, on first use
    assert hook.client.get_dag_tags("etl") == ["x"]
    assert fake.requests[0][3] == {"username": "doctor", "password": "s3cret/+:@"}
    assert default_api().base_url == fake.url
    assert hook.test_connection() == (True, f"Token received from {fake.url}/auth/token")


@pytest.mark.parametrize(
    ("fields", "url"),
    [
        pytest.param({"host": "http://api:8080/"}, "http://api:8080", id="url"),
        pytest.param({"host": "http://api", "port": 8080}, "http://api:8080", id="url-and-port"),
        pytest.param({"host": "api", "port": 8443, "schema": "https"}, "https://api:8443", id="parts"),
        pytest.param({"host": "api"}, "http://api", id="bare-host"),
    ],
)
def test_the_api_servers_url_comes_from_the_connection(monkeypatch, fields, url):
    from airflow_doctor.hooks.airflow_api import AirflowApiHook

    _api_connection(monkeypatch, "doctor_api_other", **fields)
    assert AirflowApiHook(airflow_api_conn_id="doctor_api_other").client.base_url == url


def test_without_the_connection_there_is_no_client_and_callers_degrade(monkeypatch):
    from airflow_doctor.hooks.airflow_api import AirflowApiHook, default_api

    monkeypatch.delenv("AIRFLOW_CONN_DOCTOR_AIRFLOW_API", raising=False)
    assert default_api() is None
    ok, why = AirflowApiHook().test_connection()
    assert not ok and "doctor_airflow_api" in why


def test_the_connection_type_is_published_with_its_hook():
    from airflow_doctor.hooks import CONNECTION_TYPES
    from airflow_doctor.hooks.airflow_api import AirflowApiHook
    from airflow_doctor.provider_info import get_provider_info

    [entry] = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == "airflow_api"]
    assert entry in CONNECTION_TYPES
    assert entry["hook-class-name"] == "airflow_doctor.hooks.airflow_api.AirflowApiHook"
    assert (AirflowApiHook.conn_type, AirflowApiHook.hook_name) == ("airflow_api", entry["hook-name"])
    assert AirflowApiHook.default_conn_name == "doctor_airflow_api"


# -- acting as a person, and Airflow's health -----------------------------------------------------


def test_a_person_s_client_sends_their_token_and_never_logs_in_itself(fake):
    fake.valid_tokens.add("person-jwt")
    fake.answer(
        "POST", "/api/v2/dags/etl/clearTaskInstances", (200, {"task_instances": [TI], "total_entries": 1}, 0)
    )
    api = AirflowAPI.for_user(fake.url, "person-jwt")
    assert len(api.clear_task_instances("etl", TI["dag_run_id"], "load")) == 1
    method, path, _, body, auth = fake.requests[-1]
    assert (method, path, auth) == ("POST", "/api/v2/dags/etl/clearTaskInstances", "Bearer person-jwt")
    assert body["task_ids"] == ["load"] and body["dry_run"] is False and "note" not in body

    fake.revoke_tokens()  # the person's token expired: that is their answer, not a reason to log in
    with pytest.raises(AirflowAPIError) as err:
        api.clear_task_instances("etl", TI["dag_run_id"], "load")
    assert (err.value.status, err.value.detail) == (401, "Token Expired")
    assert fake.hits("POST", "/auth/token") == 0


def test_a_person_without_a_token_sends_no_credential(fake):
    with pytest.raises(AirflowAPIError) as err:
        AirflowAPI.for_user(fake.url, None).trigger_dag_run("doctor")
    assert err.value.status == 401 and fake.requests[-1][4] is None
    assert fake.hits("POST", "/auth/token") == 0


def test_a_triggered_run_keeps_a_null_logical_date_and_its_note(fake):
    fake.answer("POST", "/api/v2/dags/doctor/dagRuns", (200, {"dag_id": "doctor", "dag_run_id": "m1"}, 0))
    assert client(fake).trigger_dag_run("doctor", {"a": 1}, note="by hand")["dag_run_id"] == "m1"
    assert fake.requests[-1][3] == {"logical_date": None, "conf": {"a": 1}, "note": "by hand"}
    client(fake).trigger_dag_run("doctor")
    assert fake.requests[-1][3] == {"logical_date": None, "conf": {}}


def test_health_is_read_without_a_token(fake):
    health = {
        "metadatabase": {"status": "healthy"},
        "scheduler": {"status": "healthy", "latest_scheduler_heartbeat": "2026-01-01T00:00:00Z"},
    }
    fake.open_paths.add("/api/v2/monitor/health")
    fake.answer("GET", "/api/v2/monitor/health", (200, health, 0))
    assert AirflowAPI(fake.url).get_health() == health
    assert fake.requests[-1][4] is None and fake.hits("POST", "/auth/token") == 0


# -- DAG versions, tries and the task's history ---------------------------------------------------


def _dag_version(number: int) -> dict:
    """Airflow 3.3's DagVersionResponse as the API nests it in task instances and tries."""
    return {
        "id": f"0196a1b2-0000-7000-8000-00000000000{number}",
        "version_number": number,
        "dag_id": "etl",
        "bundle_name": "dags-folder",
        "bundle_version": None,
        "created_at": "2026-01-01T00:00:00Z",
        "dag_display_name": "etl",
        "bundle_url": None,
    }


def _try(number: int, state: str, version: int | None, run_id: str = TI["dag_run_id"], map_index: int = -1):
    return {
        "dag_id": "etl",
        "dag_run_id": run_id,
        "task_id": "load",
        "map_index": map_index,
        "try_number": number,
        "state": state,
        "start_date": f"2026-01-01T00:0{number}:00Z",
        "end_date": f"2026-01-01T00:0{number}:30Z",
        "dag_version": _dag_version(version) if version else None,
    }


def test_a_task_instance_names_the_dag_version_it_ran_on_and_keeps_the_nested_object(fake):
    fake.answer("GET", TI_PATH, (200, {**TI, "dag_version": _dag_version(3)}, 0))
    ti = client(fake).get_task_instance("etl", TI["dag_run_id"], "load")
    assert ti["dag_version_number"] == 3
    assert ti["dag_version"]["version_number"] == 3 and ti["dag_version"]["bundle_name"] == "dags-folder"
    assert ti["state"] == "failed"  # everything else as before

    fake.answer("GET", TI_PATH, (200, {**TI, "dag_version": None}, 0))  # no version recorded
    ti = client(fake).get_task_instance("etl", TI["dag_run_id"], "load")
    assert "dag_version" not in ti and "dag_version_number" not in ti


def test_one_try_carries_its_dag_version_number(fake):
    fake.answer("GET", f"{TI_PATH}/tries/2", (200, _try(2, "failed", 4), 0))
    ref = FailureRef(dag_id="etl", run_id=TI["dag_run_id"], task_id="load", try_number=2)
    assert client(fake).get_try(ref)["dag_version_number"] == 4


def test_list_tries_reads_every_try_oldest_first(fake):
    answer = {"task_instances": [_try(2, "failed", 5), _try(1, "up_for_retry", 4)], "total_entries": 2}
    fake.answer("GET", f"{TI_PATH}/tries", (200, answer, 0))
    ref = FailureRef(dag_id="etl", run_id=TI["dag_run_id"], task_id="load", try_number=2)
    tries = client(fake).list_tries(ref)
    assert [(t["try_number"], t["state"], t["dag_version_number"]) for t in tries] == [
        (1, "up_for_retry", 4),
        (2, "failed", 5),
    ]
    assert fake.requests[-1][:3] == ("GET", f"{TI_PATH}/tries", {})


def test_list_tries_of_a_mapped_instance_uses_its_map_index_in_the_path(fake):
    answer = {"task_instances": [_try(1, "failed", 2, map_index=7)], "total_entries": 1}
    fake.answer("GET", f"{TI_PATH}/7/tries", (200, answer, 0))
    ref = FailureRef(dag_id="etl", run_id=TI["dag_run_id"], task_id="load", map_index=7, try_number=1)
    [only] = client(fake).list_tries(ref)
    assert only["map_index"] == 7 and only["dag_version_number"] == 2


def test_list_tries_of_an_unknown_task_instance_is_a_404(fake):
    fake.answer("GET", f"{TI_PATH}/tries", (404, {"detail": "not found"}, 0))
    ref = FailureRef(dag_id="etl", run_id=TI["dag_run_id"], task_id="load", try_number=1)
    with pytest.raises(AirflowAPIError) as err:
        client(fake).list_tries(ref)
    assert err.value.status == 404


ALL_RUNS_PATH = "/api/v2/dags/etl/dagRuns/~/taskInstances"


def test_task_history_asks_for_the_task_newest_first_and_leaves_out_the_failed_run(fake):
    runs = [
        _try(1, "failed", 5, run_id=TI["dag_run_id"]),  # the failed run itself
        _try(1, "success", 5, run_id="scheduled__b"),
        _try(2, "success", 4, run_id="scheduled__a"),
    ]
    fake.answer("GET", ALL_RUNS_PATH, (200, {"task_instances": runs, "total_entries": 3}, 0))
    history = client(fake).task_history("etl", "load", limit=2, exclude_run_id=TI["dag_run_id"])
    assert [(h["dag_run_id"], h["state"], h["dag_version_number"]) for h in history] == [
        ("scheduled__b", "success", 5),
        ("scheduled__a", "success", 4),
    ]
    method, path, query, _, _ = fake.requests[-1]
    assert (method, path) == ("GET", ALL_RUNS_PATH)
    assert query == {
        "task_id": ["load"],
        "map_index": ["-1"],
        "state": ["success", "failed", "up_for_retry"],
        "order_by": ["-start_date"],
        "limit": ["3"],  # one more than asked: the excluded run may be among them
    }


def test_task_history_of_a_mapped_task_follows_the_same_map_index_and_is_cut_to_the_limit(fake):
    runs = [_try(1, "success", 1, run_id=f"scheduled__{n}", map_index=4) for n in range(5)]
    fake.answer("GET", ALL_RUNS_PATH, (200, {"task_instances": runs, "total_entries": 5}, 0))
    history = client(fake).task_history("etl", "load", map_index=4, limit=3, state=None)
    assert [h["dag_run_id"] for h in history] == ["scheduled__0", "scheduled__1", "scheduled__2"]
    query = fake.requests[-1][2]
    assert query["map_index"] == ["4"] and query["limit"] == ["3"] and "state" not in query
    assert client(fake).task_history("etl", "load", limit=0) == []

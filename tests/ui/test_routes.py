"""The Doctor UI's routes in process: Airflow's own authentication and authorisation, CSRF, the
tab's content, answers that reach the gate's memory lookup, and the dashboard's figures.

Real parts: Airflow's SimpleAuthManager with real JWTs, Airflow's `requires_access_dag`, a migrated
metadata DB, and the knowledge base on the embedded Postgres. A loopback HTTP server stands in for
the REST API's clear and trigger endpoints, recording what the person's request carried.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_doctor.knowledge.store import UIStore
from airflow_doctor.models import FailureRef

TI = {
    "dag_id": "example_dag",
    "run_id": "manual__2026-12-01T00:00:00+00:00",
    "task_id": "load",
    "map_index": "-1",
}
FINGERPRINT = "f" * 64
SECRET_LOOKING = "<script>alert('x')</script>"


def _vector(seed: int) -> list[float]:
    v = [((i * 37 + seed * 11) % 17) / 17.0 + (0.5 if i == seed else 0.0) for i in range(384)]
    norm = sum(x * x for x in v) ** 0.5
    return [x / norm for x in v]


def seed_case(
    kb: UIStore,
    *,
    run_id: str = TI["run_id"],
    try_number: int = 1,
    verdict: str = "escalate",
    cleared: bool = False,
    outcome: str | None = None,
    dag_id: str = "example_dag",
) -> int:
    ref = FailureRef(dag_id=dag_id, run_id=run_id, task_id="load", try_number=try_number)
    kb.record_failures([ref])
    return kb.record_case(
        ref=ref,
        case={
            "operator": "PythonOperator",
            "fingerprint": FINGERPRINT,
            "excerpt": f"Traceback (most recent call last):\n  File \"x.py\", line 3\nKeyError: 'amount' {SECRET_LOOKING}",
            "embedding": _vector(1),
            "embedding_model": "test",
        },
        diagnosis={
            "error_class": "key_error_missing_field",
            "root_cause": "The input lost its amount column.",
            "transient": False,
            "recommended_action": "notify",
            "confidence": 0.91,
            "fix_steps": ["Restore the amount column upstream", "Re-run the task"],
            "evidence": [f"KeyError: 'amount' {SECRET_LOOKING}"],
            "diagnoser": "llm",
            "model": "claude-test",
            "input_tokens": 1000,
            "output_tokens": 200,
        },
        decision={
            "verdict": verdict,
            "reasons": [
                "judgement: key_error_missing_field is not transient",
                "policy: 0 doctor clears of 2",
            ],
        },
        cleared=cleared,
        doctor_run_id="asset_triggered__2026-12-01",
        outcome=outcome,
    )


def _tab_url(**extra) -> str:
    from urllib.parse import urlencode

    return "/doctor/tab?" + urlencode({**TI, **extra})


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _cookie(client, token: str) -> None:
    client.cookies.set("_token", token)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]{64})"', html).group(1)


ROUTES = [
    pytest.param("GET", "/doctor/tab", id="tab"),
    pytest.param("GET", "/doctor/api/tab", id="tab-json"),
    pytest.param("POST", "/doctor/answer", id="answer"),
    pytest.param("POST", "/doctor/diagnose", id="diagnose"),
    pytest.param("GET", "/doctor/dashboard", id="dashboard"),
    pytest.param("GET", "/doctor/api/dashboard", id="dashboard-json"),
    pytest.param("GET", "/doctor/static/chart.umd.min.js", id="static"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_anonymous_requests(ui_client, method, path):
    from urllib.parse import urlencode

    resp = ui_client.request(
        method, f"{path}?{urlencode(TI)}", data={"case_id": "1", "answer": "permanent", "try_number": "1"}
    )
    assert resp.status_code in (401, 403), resp.text
    assert "key_error" not in resp.text and "Doctor" not in resp.text


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_a_forged_token(ui_client, method, path):
    from urllib.parse import urlencode

    resp = ui_client.request(method, f"{path}?{urlencode(TI)}", headers=_auth("not.a.jwt"))
    assert resp.status_code in (401, 403)


def test_user_without_a_role_cannot_read_the_tab(ui_client, tokens, kb_dsn):
    seed_case(UIStore(dsn=kb_dsn))
    resp = ui_client.get(_tab_url(), headers=_auth(tokens["nobody"]))
    assert resp.status_code == 403
    assert "key_error" not in resp.text


def test_viewer_reads_the_tab_but_cannot_answer(ui_client, tokens, kb_dsn):
    kb = UIStore(dsn=kb_dsn)
    case_id = seed_case(kb)
    page = ui_client.get(_tab_url(), headers=_auth(tokens["viewer"]))
    assert page.status_code == 200
    assert "key_error_missing_field" in page.text
    assert "Permanent — don't auto-retry this again" not in page.text  # no buttons for a reader
    resp = ui_client.post(
        "/doctor/answer",
        params=TI,
        data={"case_id": case_id, "answer": "permanent"},
        headers=_auth(tokens["viewer"]),
    )
    assert resp.status_code == 403
    assert kb.answers_of(case_id) == []


def test_tab_shows_what_the_doctor_saw_escaped(ui_client, tokens, kb_dsn):
    kb = UIStore(dsn=kb_dsn)
    seed_case(kb)
    # A similar case of another run, retried by the doctor with success: listed with a link.
    other = seed_case(
        kb, run_id="scheduled__2026-11-30", verdict="auto_retry", cleared=True, outcome="succeeded"
    )
    html = ui_client.get(_tab_url(), headers=_auth(tokens["viewer"])).text
    assert "KeyError: &#39;amount&#39; &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert SECRET_LOOKING not in html
    for text in (
        "Primary error",
        "Evidence lines",
        "Restore the amount column upstream",
        "claude-test",
        "0.91",
        "judgement: key_error_missing_field is not transient",
        "policy: 0 doctor clears of 2",
        "Escalated to a human",
        "Timeline",
        "diagnosis (llm, claude-test)",
        "asset_triggered__2026-12-01",
    ):
        assert text in html, text
    assert "the doctor&#39;s retry succeeded" in html
    assert "/dags/example_dag/runs/scheduled__2026-11-30/tasks/load" in html
    assert other


def test_tab_of_a_task_instance_never_seen_offers_diagnose_now(ui_client, tokens):
    html = ui_client.get(_tab_url(), headers=_auth(tokens["user"])).text
    assert "The doctor never saw this task instance" in html
    assert "Diagnose now" in html


class _FakeRestAPI(BaseHTTPRequestHandler):
    """Loopback stand-in for the API server's clear and trigger endpoints; records each request."""

    seen: list = []
    status = 200

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        if "clearTaskInstances" in self.path:
            cleared = {"dag_id": "example_dag", "dag_run_id": body["dag_run_id"], "task_id": "load"}
            payload = {"task_instances": [cleared], "total_entries": 1}
        else:
            payload = {"dag_id": "doctor", "dag_run_id": "manual__doctor", "state": "queued"}
        if type(self).status >= 400:
            payload = {"detail": "Forbidden"}
        self.wfile.write(json.dumps(payload).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def rest_api(monkeypatch):
    _FakeRestAPI.seen = []
    _FakeRestAPI.status = 200
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _FakeRestAPI)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("DOCTOR_UI_API_URL", f"http://127.0.0.1:{httpd.server_address[1]}")
    yield _FakeRestAPI
    httpd.shutdown()


def test_answers_need_the_csrf_token_when_authenticated_by_cookie(ui_client, tokens, kb_dsn, rest_api):
    kb = UIStore(dsn=kb_dsn)
    case_id = seed_case(kb)
    _cookie(ui_client, tokens["user"])
    html = ui_client.get(_tab_url()).text
    token = _csrf(html)
    no_token = ui_client.post("/doctor/answer", params=TI, data={"case_id": case_id, "answer": "permanent"})
    assert no_token.status_code == 403
    wrong = ui_client.post(
        "/doctor/answer", params=TI, data={"case_id": case_id, "answer": "permanent", "csrf_token": "0" * 64}
    )
    assert wrong.status_code == 403
    # The token is bound to the DAG: the token of another DAG's tab does not work here.
    from airflow_doctor.ui.app import csrf_token

    other_dag = csrf_token("user-person", "other_dag")
    assert (
        ui_client.post(
            "/doctor/answer",
            params=TI,
            data={"case_id": case_id, "answer": "permanent", "csrf_token": other_dag},
        ).status_code
        == 403
    )
    cross_site = ui_client.post(
        "/doctor/answer",
        params=TI,
        headers={"Origin": "https://evil.example"},
        data={"case_id": case_id, "answer": "permanent", "csrf_token": token},
    )
    assert cross_site.status_code == 403
    assert kb.answers_of(case_id) == []
    ok = ui_client.post(
        "/doctor/answer",
        params=TI,
        data={"case_id": case_id, "answer": "permanent", "csrf_token": token},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    [row] = kb.answers_of(case_id)
    assert (row["answer"], row["actor"], row["user_name"]) == ("permanent", "human", "user-person")
    assert rest_api.seen == []  # "permanent" clears nothing


def test_permanent_answer_reaches_the_gate_and_undo_lifts_it(ui_client, tokens, kb_dsn, rest_api):
    from airflow_doctor.judgement.gate import decide
    from airflow_doctor.models import Diagnosis
    from airflow_doctor.settings import DoctorSettings

    kb = UIStore(dsn=kb_dsn)
    case_id = seed_case(kb, verdict="auto_retry", cleared=True, outcome="succeeded")
    nxt = FailureRef(dag_id="example_dag", run_id="scheduled__2026-12-02", task_id="load", try_number=1)
    before = kb.find_by_fingerprint(FINGERPRINT, nxt)
    assert [n.judged_permanent for n in before] == [False]
    assert before[0].retry_verified

    resp = ui_client.post(
        "/doctor/answer",
        params=TI,
        data={"case_id": case_id, "answer": "permanent"},
        headers=_auth(tokens["user"]) | {"Accept": "application/json"},
    )
    assert resp.status_code == 200, resp.text
    after = kb.find_by_fingerprint(FINGERPRINT, nxt)
    assert after[0].case_id == case_id and after[0].judged_permanent and not after[0].retry_verified

    diagnosis = Diagnosis(
        error_class="warehouse_connection_reset",
        root_cause="reset",
        transient=True,
        recommended_action="retry",
        confidence=0.95,
        diagnoser="llm",
    )
    assert decide(diagnosis, [], before, 0, [], DoctorSettings()).verdict == "auto_retry"
    decision = decide(diagnosis, [], after, 0, [], DoctorSettings())
    assert decision.verdict == "escalate"
    assert f"memory: a person said case {case_id} (same fingerprint) is permanent" in decision.reasons

    # Many later escalations of the same fingerprint do not push the person's answer out of the lookup.
    for n in range(6):
        seed_case(kb, run_id=f"scheduled__later-{n}")
    assert any(n.judged_permanent for n in kb.find_by_fingerprint(FINGERPRINT, nxt))

    undo = ui_client.post(
        "/doctor/answer",
        params=TI,
        data={"case_id": case_id, "answer": "undo"},
        headers=_auth(tokens["user"]) | {"Accept": "application/json"},
    )
    assert undo.status_code == 200 and undo.json()["row"]["answer"] == "permanent"
    assert not any(n.judged_permanent for n in kb.find_by_fingerprint(FINGERPRINT, nxt))
    html = ui_client.get(_tab_url(), headers=_auth(tokens["user"])).text
    assert "undone by user-person" in html


def test_transient_answer_clears_as_the_person_and_records_it(ui_client, tokens, kb_dsn, rest_api):
    kb = UIStore(dsn=kb_dsn)
    case_id = seed_case(kb)
    resp = ui_client.post(
        "/doctor/answer",
        params=TI,
        data={"case_id": case_id, "answer": "transient"},
        headers=_auth(tokens["user"]),
        follow_redirects=False,
    )
    assert resp.status_code == 303 and "notice=transient-cleared" in resp.headers["location"]
    [call] = rest_api.seen
    assert call["path"] == "/api/v2/dags/example_dag/clearTaskInstances"
    assert call["auth"] == f"Bearer {tokens['user']}"  # the person's own token: Airflow checks them
    assert call["body"]["dry_run"] is False and call["body"]["only_failed"] is True
    assert call["body"]["dag_run_id"] == TI["run_id"] and call["body"]["task_ids"] == ["load"]
    [row] = kb.answers_of(case_id)
    assert row["answer"] == "transient" and row["cleared"] is True
    nxt = FailureRef(dag_id="example_dag", run_id="scheduled__2026-12-02", task_id="load", try_number=1)
    [n] = kb.find_by_fingerprint(FINGERPRINT, nxt)
    assert n.retry_verified and n.actor == "human" and n.transient is True


def test_transient_answer_refused_by_airflow_stores_nothing(ui_client, tokens, kb_dsn, rest_api):
    kb = UIStore(dsn=kb_dsn)
    case_id = seed_case(kb)
    rest_api.status = 403
    resp = ui_client.post(
        "/doctor/answer",
        params=TI,
        data={"case_id": case_id, "answer": "transient"},
        headers=_auth(tokens["user"]),
    )
    assert resp.status_code == 403
    assert kb.answers_of(case_id) == []


def test_transient_answer_with_the_api_server_down_is_a_502_and_stores_nothing(
    ui_client, tokens, kb_dsn, monkeypatch
):
    from tests.conftest import free_port

    kb = UIStore(dsn=kb_dsn)
    case_id = seed_case(kb)
    monkeypatch.setenv("DOCTOR_UI_API_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    resp = ui_client.post(
        "/doctor/answer",
        params=TI,
        data={"case_id": case_id, "answer": "transient"},
        headers=_auth(tokens["user"]),
    )
    assert resp.status_code == 502 and "ConnectError" in resp.json()["detail"]
    assert kb.answers_of(case_id) == []


def test_wrong_class_is_validated_and_shown(ui_client, tokens, kb_dsn, rest_api):
    kb = UIStore(dsn=kb_dsn)
    case_id = seed_case(kb)
    bad = ui_client.post(
        "/doctor/answer",
        params=TI,
        data={"case_id": case_id, "answer": "wrong_class", "error_class": "<b>x</b>"},
        headers=_auth(tokens["user"]),
    )
    assert bad.status_code == 400
    ok = ui_client.post(
        "/doctor/answer",
        params=TI,
        data={"case_id": case_id, "answer": "wrong_class", "error_class": "Schema Mismatch"},
        headers=_auth(tokens["user"]),
    )
    assert ok.status_code == 200  # the redirect to the tab was followed
    assert "right class per user-person" in ok.text and "schema_mismatch" in ok.text
    nxt = FailureRef(dag_id="example_dag", run_id="scheduled__2026-12-02", task_id="load", try_number=1)
    assert kb.find_by_fingerprint(FINGERPRINT, nxt)[0].error_class == "schema_mismatch"


def test_an_answer_on_a_case_of_another_dag_is_refused(ui_client, tokens, kb_dsn, rest_api):
    kb = UIStore(dsn=kb_dsn)
    foreign = seed_case(kb, dag_id="other_dag")
    resp = ui_client.post(
        "/doctor/answer",
        params=TI,
        data={"case_id": foreign, "answer": "permanent"},
        headers=_auth(tokens["user"]),
    )
    assert resp.status_code == 400
    assert kb.answers_of(foreign) == []


def test_diagnose_now_triggers_the_doctor_as_the_person(ui_client, tokens, rest_api):
    resp = ui_client.post(
        "/doctor/diagnose",
        params=TI,
        data={"try_number": 2},
        headers=_auth(tokens["user"]) | {"Accept": "application/json"},
    )
    assert resp.status_code == 200 and resp.json() == {"dag_run_id": "manual__doctor"}
    [call] = rest_api.seen
    assert call["path"] == "/api/v2/dags/doctor/dagRuns" and call["auth"] == f"Bearer {tokens['user']}"
    assert (
        call["body"]["logical_date"] is None
        and call["body"]["note"] == "started from the Doctor tab (diagnose now)"
    )
    assert call["body"]["conf"] == {
        "dag_id": "example_dag",
        "run_id": TI["run_id"],
        "task_id": "load",
        "map_index": -1,
        "try_number": 2,
    }


def test_dashboard_counts_only_readable_dags_and_filters_by_tag(ui_client, tokens, kb_dsn):
    kb = UIStore(dsn=kb_dsn)
    seed_case(kb, verdict="auto_retry", cleared=True, outcome="succeeded")
    seed_case(kb, run_id="r2")
    seed_case(kb, run_id="r3", dag_id="other_dag")
    seed_case(kb, run_id="r4", dag_id="dag_not_in_airflow")  # a DAG the user cannot read: never counted
    data = ui_client.get("/doctor/api/dashboard", headers=_auth(tokens["viewer"])).json()
    f = data["figures"]
    assert (f["failures_seen"], f["auto_healed"], f["escalated"]) == (3, 1, 2)
    assert f["retries_held"] == {"held": 1, "failed": 0, "share": 1.0}
    assert f["llm"]["calls"] == 3 and f["llm"]["input_tokens"] == 3000
    assert data["tags"] == ["nightly", "team-a", "team-b"]
    by_tag = ui_client.get(
        "/doctor/api/dashboard", params={"tag": "team-b"}, headers=_auth(tokens["viewer"])
    ).json()
    assert by_tag["figures"]["failures_seen"] == 1
    by_dag = ui_client.get(
        "/doctor/api/dashboard", params={"dag_id": "example_dag"}, headers=_auth(tokens["viewer"])
    ).json()
    assert by_dag["figures"]["failures_seen"] == 2
    html = ui_client.get("/doctor/dashboard", headers=_auth(tokens["viewer"])).text
    assert 'data-figure="failures_seen">3<' in html and "chart-series" in html
    assert "dag_not_in_airflow" not in html


def test_static_chart_library_is_served_to_a_signed_in_user(ui_client, tokens):
    resp = ui_client.get("/doctor/static/chart.umd.min.js", headers=_auth(tokens["viewer"]))
    assert resp.status_code == 200 and "Chart.js v4.5.1" in resp.text[:200]
    assert ui_client.get("/doctor/static/..%2Fapp.py", headers=_auth(tokens["viewer"])).status_code == 404


def test_tab_of_a_failure_being_handled_links_the_doctor_run_and_required_actions(ui_client, tokens, kb_dsn):
    kb = UIStore(dsn=kb_dsn)
    ref = FailureRef(dag_id="example_dag", run_id=TI["run_id"], task_id="load", try_number=1)
    kb.record_failures([ref])
    queued = ui_client.get(_tab_url(), headers=_auth(tokens["viewer"])).text
    assert "Reported, waiting for the doctor" in queued
    kb.claim_failures("asset_triggered__now")
    handling = ui_client.get(_tab_url(), headers=_auth(tokens["viewer"])).text
    assert "The doctor is handling this failure" in handling
    assert "/dags/doctor/runs/asset_triggered__now/required_actions" in handling


# -- issue 24 ------------------------------------------------------------------------------------


def _answer(client, token: str, case_id: int, answer: str, **extra):
    return client.post(
        "/doctor/answer",
        params=TI,
        data={"case_id": case_id, "answer": answer, **extra},
        headers=_auth(token) | {"Accept": "application/json"},
    )


def test_undo_is_refused_unless_it_is_the_persons_latest_answer(ui_client, tokens, kb_dsn, rest_api):
    kb = UIStore(dsn=kb_dsn)
    case_id = seed_case(kb)
    assert _answer(ui_client, tokens["user"], case_id, "permanent").status_code == 200
    mine = kb.answers_of(case_id)[0]["id"]
    assert (
        _answer(ui_client, tokens["admin"], case_id, "wrong_class", error_class="bad_input").status_code
        == 200
    )

    # The user's answer is no longer the newest: undoing would retire the admin's answer instead.
    refused = _answer(ui_client, tokens["user"], case_id, "undo", answer_id=mine)
    assert refused.status_code == 409
    assert [a["undone_at"] for a in kb.answers_of(case_id)] == [None, None]
    # Nobody who never answered may undo, and an answer id that is not the latest is refused.
    assert _answer(ui_client, tokens["viewer"], case_id, "undo").status_code == 403  # may not edit at all
    html = ui_client.get(_tab_url(), headers=_auth(tokens["user"])).text
    assert 'value="undo"' not in html  # no Undo offered to the user now
    admin_html = ui_client.get(_tab_url(), headers=_auth(tokens["admin"])).text
    assert 'value="undo"' in admin_html and "Undoes your answer just given (wrong class" in admin_html
    assert _answer(ui_client, tokens["admin"], case_id, "undo", answer_id=mine).status_code == 409
    done = _answer(ui_client, tokens["admin"], case_id, "undo")
    assert done.status_code == 200 and done.json()["row"]["answer"] == "wrong_class"
    # Undone, the admin's latest answer is no longer in force: a second undo is refused, not an older one.
    assert _answer(ui_client, tokens["admin"], case_id, "undo").status_code == 409
    assert kb.answers_of(case_id)[1]["undone_at"] is None


def test_every_page_runs_only_its_own_static_scripts(ui_client, tokens, kb_dsn):
    seed_case(UIStore(dsn=kb_dsn))
    for path in (_tab_url(), "/doctor/dashboard"):
        resp = ui_client.get(path, headers=_auth(tokens["admin"]))
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'self'" in csp and "object-src 'none'" in csp
        for tag in re.findall(r"<script\b[^>]*>", resp.text):
            assert "src=" in tag or 'type="application/json"' in tag, tag  # nothing inline runs
        assert not re.search(r"\son[a-z]+=", resp.text)  # no event-handler attributes


def test_an_approved_retry_is_shown_as_approved_by_the_person(ui_client, tokens, kb_dsn, monkeypatch):
    from airflow_doctor.ui import airflow_facts
    from tests.ui.test_ui_data import APPROVED_BY_ALICE

    kb = UIStore(dsn=kb_dsn)
    ref = FailureRef(dag_id="example_dag", run_id=TI["run_id"], task_id="load", try_number=1)
    kb.record_failures([ref])
    kb.record_case(
        ref=ref,
        case={"operator": "_PythonDecoratedOperator", "fingerprint": FINGERPRINT, "excerpt": "ValueError: x"},
        diagnosis=None,
        decision={"verdict": "approval", "reasons": ["judgement: in the grey zone"]},
        cleared=True,
        doctor_run_id="manual__doctor",
        actor="human",
    )
    approval = {**APPROVED_BY_ALICE, "subject": "Retry example_dag.load (try 1)?"}
    monkeypatch.setattr(
        airflow_facts,
        "doctor_run_facts",
        lambda *a: {"dry_run": False, "approvals": [approval], "pending": None},
    )
    html = ui_client.get(_tab_url(), headers=_auth(tokens["viewer"])).text
    assert "Approved by alice in Required Actions at 2026-12-05 01:00:30 UTC" in html
    assert "A person:" not in html and "No decision recorded" not in html
    assert "Python (@task)" in html
    assert "Transient — retry it now" not in html  # already retried
    data = ui_client.get("/doctor/api/dashboard", headers=_auth(tokens["viewer"])).json()["figures"]
    assert data["approvals"] == {"total": 1, "approved": 1, "rejected": 0, "unanswered": 0}
    assert "not decided" not in json.dumps(data["top_fingerprints"])


def test_the_retry_policys_decisions_are_on_the_tab_and_the_dashboard(ui_client, tokens, kb_dsn):
    kb = UIStore(dsn=kb_dsn)
    seed_case(kb)
    key = {"dag_id": "example_dag", "run_id": TI["run_id"], "task_id": "load", "map_index": -1}
    with kb.connection() as conn, conn.cursor() as cur:
        for try_number, action in ((1, "retry"), (2, "retry"), (2, "fail")):  # try 2 judged twice
            cur.execute(
                "INSERT INTO doctor.policy_decisions (dag_id, run_id, task_id, map_index, try_number,"
                " fingerprint, action, reason) VALUES (%(dag_id)s, %(run_id)s, %(task_id)s, %(map_index)s,"
                " %(t)s, 'fp', %(a)s, %(r)s)",
                {**key, "t": try_number, "a": action, "r": f"policy said {action} <b>"},
            )
    with kb.connection() as conn, conn.cursor() as cur:  # the sweeper saw Airflow's retry of try 1 succeed
        cur.execute(
            "INSERT INTO doctor.retried_tries (dag_id, run_id, task_id, map_index, try_number, source,"
            " learnt_at, verdict) VALUES (%(dag_id)s, %(run_id)s, %(task_id)s, %(map_index)s, 1, 'listener',"
            " now(), 'succeeded')",
            key,
        )
    html = ui_client.get(_tab_url(try_number=2), headers=_auth(tokens["viewer"])).text
    assert "the task&#39;s DoctorRetryPolicy" in html and "fail: policy said fail &lt;b&gt;" in html
    assert '<a class="try"' in html and '<span class="sep"> · </span>' in html
    data = ui_client.get("/doctor/api/dashboard", headers=_auth(tokens["viewer"])).json()["figures"]
    assert data["policy"] == {"decisions": 2, "healed": 1, "by_action": {"retry": 1, "fail": 1}}
    assert data["pages_avoided"] == 1


def test_the_dashboard_shows_open_escalations_fingerprints_and_doctor_health(
    ui_client, tokens, kb_dsn, monkeypatch
):
    from airflow_doctor.ui import airflow_facts

    # Airflow shows every one still failed (the test's metadata database holds no task instances).
    monkeypatch.setattr(airflow_facts, "still_failed", lambda keys: set(keys))
    kb = UIStore(dsn=kb_dsn)
    seed_case(kb)  # escalated, nobody acted
    seed_case(kb, run_id="r2", verdict="auto_retry", cleared=True, outcome="succeeded")
    answered = seed_case(kb, run_id="r3")
    kb.record_answer(answered, answer="permanent", user_name="alice")
    html = ui_client.get("/doctor/dashboard", headers=_auth(tokens["viewer"])).text
    assert "Open escalations" in html and 'data-figure="open_escalations">1<' in html
    assert "/dags/example_dag/runs/manual__2026-12-01T00%3A00%3A00%2B00%3A00/tasks/load/plugin/doctor" in html
    # The fingerprint's redacted error, escaped, and its latest case.
    assert (
        "KeyError: &#39;amount&#39; &lt;script&gt;" in html
        and "/dags/example_dag/runs/r3/tasks/load/plugin/doctor" in html
    )
    assert "Doctor health:" in html and "Degraded" not in html
    assert '<td>knowledge base</td><td class="state">reachable</td>' in html
    assert 'data-figure="pages_avoided">1<' in html


def test_tab_of_a_waiting_approval_and_of_a_dry_run(ui_client, tokens, kb_dsn, monkeypatch):
    from airflow_doctor.ui import airflow_facts
    from tests.ui.test_ui_data import APPROVED_BY_ALICE, DIAG

    kb = UIStore(dsn=kb_dsn)
    kb.record_failures([FailureRef(dag_id="example_dag", run_id=TI["run_id"], task_id="load", try_number=1)])
    kb.claim_failures("manual__doctor")
    pending = {"diagnosis": DIAG, "decision": {"verdict": "approval", "reasons": ["judgement: <grey> zone"]}}
    waiting = {**APPROVED_BY_ALICE, "subject": "Retry example_dag.load (try 1)?", "responded_at": None}
    facts = {"dry_run": False, "approvals": [waiting], "pending": pending}
    monkeypatch.setattr(airflow_facts, "doctor_run_facts", lambda *a: dict(facts))
    html = ui_client.get(_tab_url(), headers=_auth(tokens["viewer"])).text
    assert "Waiting for approval since 2026-12-05 01:00:10 UTC, in" in html
    assert "/dags/doctor/runs/manual__doctor/required_actions" in html
    assert "judgement: &lt;grey&gt; zone" in html and "warehouse_connection_reset" in html

    facts.update(
        dry_run=True,
        approvals=[],
        pending={**pending, "decision": {"verdict": "auto_retry", "reasons": ["r"]}},
    )
    html = ui_client.get(_tab_url(), headers=_auth(tokens["viewer"])).text
    assert "Dry run: doctor run" in html and "the gate decided auto_retry" in html

"""The Doctor's FastAPI app on Airflow's API server (mounted at /doctor by plugins.DoctorUIPlugin).

Routes (all server-rendered HTML or JSON; every one requires an authenticated Airflow user):

| route | permission (Airflow's own `requires_access_dag`) |
|---|---|
| GET  /tab?dag_id&run_id&task_id&map_index[&try_number]  | read task instances of dag_id |
| GET  /api/tab?...  (the same as JSON)                   | read task instances of dag_id |
| POST /answer?dag_id&run_id&task_id&map_index            | edit task instances of dag_id, + CSRF token |
| POST /diagnose?dag_id&run_id&task_id&map_index          | edit task instances of dag_id, + CSRF token |
| GET  /dashboard[?dag_id&tag&range]                      | any authenticated user; only readable DAGs |
| GET  /api/dashboard?...                                 | as /dashboard |
| GET  /static/{name}                                     | any authenticated user |

Authentication reuses Airflow's security dependencies (airflow/api_fastapi/core_api/security.py):
`get_user` reads the JWT from `Authorization: Bearer` or the UI's `_token` cookie and answers
401 without one (403 for an invalid one); `requires_access_dag(method, TASK_INSTANCE)` asks the
configured auth manager about the DAG in the query string, as Airflow's own routes do. A plugin's
routes are not protected by the API server otherwise: each route here declares its dependency.

CSRF: the UI authenticates the browser with the `_token` cookie, which the browser sends with any
request to this origin. The answer routes (the only ones that change anything) therefore:
1. accept POST only (a link or an image cannot post);
2. require a token bound to the user and the DAG: HMAC-SHA256 keyed with the API server's
   `[api_auth] jwt_secret` over (user id, DAG id), rendered into the tab's forms; another site cannot
   read the tab (same-origin policy), so it cannot know the token. Requests authenticated with an
   explicit `Authorization: Bearer` header carry no ambient credential and need no token;
3. refuse a request whose `Origin` header names another host.
The `_token` cookie is also set `SameSite=Lax` by Airflow, so a cross-site POST does not carry it.

Actions taken for a person (clear, trigger) go through the public REST API with the person's own
token, so Airflow checks their permission exactly as for the UI's buttons.

This module is imported by the API server only, on the first request to /doctor (see __init__.py);
FastAPI resolves the routes' annotations at import, so they are not postponed here.
"""

import hashlib
import hmac
import logging
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from airflow_doctor.knowledge import answers as answers_mod
from airflow_doctor.knowledge.store import UIStore
from airflow_doctor.ui import airflow_facts
from airflow_doctor.ui import views as ui_data

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC_FILES = {
    "chart.umd.min.js": "text/javascript",
    "chart.js.LICENSE.md": "text/plain; charset=utf-8",
    "doctor.css": "text/css",
    "doctor.js": "text/javascript",
    "doctor.svg": "image/svg+xml",
}
#: The dashboard's time ranges (the filter's choices).
RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_RANGE = "7d"
#: Fixed notices after an answer (the redirect names one; free text never travels in a URL).
NOTICES = {
    "transient-cleared": "Recorded as transient and cleared for retry.",
    "transient-not-cleared": "Recorded as transient; nothing was cleared (the try is no longer failed).",
    "permanent": "Recorded as permanent: the doctor will not auto-retry this fingerprint until undone.",
    "wrong_class": "Recorded: the right class.",
    "undo": "Undone.",
    "undo-nothing": "There was no answer to undo.",
    "diagnose": "The doctor was started for this failure; reload in a minute.",
}
CSRF_HEADER = "X-Doctor-CSRF"
#: Every response's Content-Security-Policy: framed only by Airflow's UI (same origin), scripts only
#: from this origin's files (the pages have no inline script; event-handler attributes do not run),
#: no plugins, no <base> rewriting, forms post only here.
CONTENT_SECURITY_POLICY = (
    "frame-ancestors 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
)
_FALLBACK_SECRET = secrets.token_bytes(32)


def _secret() -> bytes:
    """The CSRF key: the API server's JWT secret (shared by its workers), else a per-process one."""
    from airflow.configuration import conf

    value = conf.get("api_auth", "jwt_secret", fallback="") or ""
    return value.encode() if value else _FALLBACK_SECRET


def csrf_token(user_id: str, dag_id: str) -> str:
    """The CSRF token of one user for one DAG's answers: hex HMAC-SHA256 (64 characters)."""
    return hmac.new(_secret(), f"{user_id}\x00{dag_id}".encode(), hashlib.sha256).hexdigest()


def _user_token(request) -> str | None:
    """The caller's JWT: the Bearer credential, else the UI's `_token` cookie."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    auth = request.headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.cookies.get(COOKIE_NAME_JWT_TOKEN)


def api_base_url(request) -> str:
    """Where this API server is reached: env DOCTOR_UI_API_URL, `[api] base_url`, else the request origin."""
    from airflow.configuration import conf

    configured = os.environ.get("DOCTOR_UI_API_URL") or conf.get("api", "base_url", fallback="") or ""
    if configured:
        return configured.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}"


def _map_index(value: str | None) -> int:
    """`{MAP_INDEX}` as the UI fills it: an integer, or left unfilled / empty for an unmapped task."""
    try:
        return int(value) if value not in (None, "") else -1
    except ValueError:
        return -1


def _task_instance(
    dag_id: str, run_id: str, task_id: str, map_index: str | None = None
) -> answers_mod.TaskInstanceKey:
    """The task instance the query names (a dependency of the tab's routes)."""
    return answers_mod.TaskInstanceKey(dag_id, run_id, task_id, _map_index(map_index))


TaskInstanceQuery = Annotated[answers_mod.TaskInstanceKey, Depends(_task_instance)]


def create_app():
    """Build the Doctor FastAPI app (routes above). Called once, on the first request to /doctor."""
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda v: v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if v else "-"
    env.filters["seconds"] = _fmt_seconds
    env.filters["pct"] = lambda v: "-" if v is None else f"{100 * v:.0f}%"

    app = FastAPI(title="airflow-doctor UI", docs_url=None, redoc_url=None, openapi_url=None)
    read_ti = Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))
    edit_ti = Depends(requires_access_dag("PUT", DagAccessEntity.TASK_INSTANCE))

    def store() -> UIStore:
        return UIStore(dsn=os.environ.get("DOCTOR_UI_DSN") or None)

    def render(name: str, status: int = 200, **context) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    def check_csrf(request: Request, user, dag_id: str, token: str | None) -> None:
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.url.netloc:
            raise HTTPException(403, "cross-origin request refused")
        if (request.headers.get("authorization") or "").lower().startswith("bearer "):
            return  # an explicit credential: no ambient cookie a third site could ride on
        expected = csrf_token(user.get_id(), dag_id)
        given = token or request.headers.get(CSRF_HEADER) or ""
        if not hmac.compare_digest(given, expected):
            raise HTTPException(403, "missing or wrong CSRF token: reload the Doctor tab and answer again")

    def check_undo(ti, case_id: int, user_name: str, answer_id: int | None) -> None:
        """Refuse (409) an undo of anything but the person's own latest answer on this task instance,
        when it is also the case's newest answer in force (the one the undo query retires)."""
        kb = store()
        mine = kb.latest_answer_of(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, user_name)
        newest = ui_data.undoable_answer(kb.answers_of(case_id), user_name)
        if (
            mine is None
            or mine["case_id"] != case_id
            or mine["undone_at"] is not None
            or newest != mine["id"]
        ):
            raise HTTPException(
                409,
                "Only your latest answer on this task instance can be undone, while it is the newest one.",
            )
        if answer_id is not None and answer_id != mine["id"]:
            raise HTTPException(
                409, "That answer is not your latest on this task instance: nothing was undone."
            )

    def tab_data(
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int,
        try_number: int | None,
        user_name: str | None = None,
    ) -> dict:
        kb = store()
        held = kb.task_instance_cases(dag_id, run_id, task_id, map_index)
        case = next(
            (c for c in held["cases"] if c["try_number"] == try_number),
            held["cases"][-1] if held["cases"] else None,
        )
        details = kb.case_details(case["id"]) if case else None
        try:
            policy = kb.policy_decisions_of(dag_id, run_id, task_id, map_index)
        except Exception as exc:  # noqa: BLE001 - the policy's decisions are extra; the tab still shows
            log.warning("Could not read the retry policy's decisions: %s", exc)
            policy = []
        first = ui_data.tab_view(held, details, try_number, policy=policy, user=user_name)
        row = first["case"] or first["inbox"] or {}
        doctor_run = first["doctor_run_id"]
        facts = airflow_facts.doctor_run_facts(
            answers_mod.DOCTOR_DAG_ID,
            doctor_run,
            {
                "dag_id": dag_id,
                "run_id": run_id,
                "task_id": task_id,
                "map_index": map_index,
                "try_number": row.get("try_number"),
            },
        )
        facts["operator"] = airflow_facts.task_operator(dag_id, run_id, task_id, map_index)
        if not any(facts.values()):
            return first
        return ui_data.tab_view(held, details, try_number, airflow=facts, policy=policy, user=user_name)

    @app.get("/tab", response_class=HTMLResponse, dependencies=[read_ti])
    def tab(
        user: GetUserDep, ti: TaskInstanceQuery, try_number: int | None = None, notice: str | None = None
    ):
        dag_id, run_id, task_id = ti.dag_id, ti.run_id, ti.task_id
        try:
            view = tab_data(dag_id, run_id, task_id, ti.map_index, try_number, user.get_name())
            error = None
        except Exception as exc:  # noqa: BLE001 - the tab says the knowledge base is down, never a 500
            log.warning("Doctor tab: knowledge base unavailable: %s", exc)
            view, error = None, f"The doctor's knowledge base is unavailable: {type(exc).__name__}"
        can_edit = _can_edit(user, dag_id)
        return render(
            "tab.html",
            ti=ti,
            view=view,
            error=error,
            user=user.get_name(),
            can_edit=can_edit,
            csrf=csrf_token(user.get_id(), dag_id) if can_edit else "",
            notice=NOTICES.get(notice or ""),
            query=urlencode(
                {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": ti.map_index}
            ),
            ui_link=ui_data.ui_link,
            doctor_dag=answers_mod.DOCTOR_DAG_ID,
        )

    @app.get("/api/tab", dependencies=[read_ti])
    def tab_json(user: GetUserDep, ti: TaskInstanceQuery, try_number: int | None = None):
        view = tab_data(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, try_number, user.get_name())
        return JSONResponse(_jsonable(view))

    @app.post("/answer", dependencies=[edit_ti])
    def answer(
        request: Request,
        user: GetUserDep,
        dag_id: Annotated[str, Query()],
        run_id: Annotated[str, Query()],
        task_id: Annotated[str, Query()],
        case_id: Annotated[int, Form()],
        answer: Annotated[str, Form()],
        map_index: Annotated[str | None, Query()] = None,
        error_class: Annotated[str | None, Form()] = None,
        answer_id: Annotated[int | None, Form()] = None,
        csrf_token: Annotated[str | None, Form()] = None,
    ):
        check_csrf(request, user, dag_id, csrf_token)
        ti = answers_mod.TaskInstanceKey(dag_id, run_id, task_id, _map_index(map_index))
        if answer == "undo":
            check_undo(ti, case_id, user.get_name(), answer_id)
        token = _user_token(request)
        base = api_base_url(request)
        try:
            result = answers_mod.take_answer(
                store(),
                ti,
                case_id,
                answer,
                user_name=user.get_name(),
                error_class=error_class,
                clear=lambda key: answers_mod.clear_as_user(base, token, key),
            )
        except answers_mod.AnswerError as exc:
            raise HTTPException(400, str(exc)) from exc
        except answers_mod.AirflowRefusedError as exc:
            raise HTTPException(exc.status if exc.status in (401, 403, 404, 409) else 502, str(exc)) from exc
        if answer == "transient":
            notice = "transient-cleared" if result["cleared"] else "transient-not-cleared"
        elif answer == "undo":
            notice = "undo" if result["row"] else "undo-nothing"
        else:
            notice = answer
        if (request.headers.get("accept") or "").startswith("application/json"):
            return JSONResponse(_jsonable(result))
        return _back_to_tab(ti, notice)

    @app.post("/diagnose", dependencies=[edit_ti])
    def diagnose(
        request: Request,
        user: GetUserDep,
        dag_id: Annotated[str, Query()],
        run_id: Annotated[str, Query()],
        task_id: Annotated[str, Query()],
        try_number: Annotated[int, Form(ge=1)],
        map_index: Annotated[str | None, Query()] = None,
        csrf_token: Annotated[str | None, Form()] = None,
    ):
        check_csrf(request, user, dag_id, csrf_token)
        ti = answers_mod.TaskInstanceKey(dag_id, run_id, task_id, _map_index(map_index))
        try:
            run = answers_mod.trigger_doctor_as_user(
                api_base_url(request), _user_token(request), ti, try_number
            )
        except answers_mod.AirflowRefusedError as exc:
            raise HTTPException(exc.status if exc.status in (401, 403, 404, 409) else 502, str(exc)) from exc
        if (request.headers.get("accept") or "").startswith("application/json"):
            return JSONResponse({"dag_run_id": run})
        return _back_to_tab(ti, "diagnose")

    def dashboard_data(user, dag_id: str | None, tag: str | None, range_: str) -> dict:
        readable = _readable_dags(user)
        tags = _dag_tags(readable)
        chosen = set(readable)
        if dag_id:
            chosen &= {dag_id}
        if tag:
            chosen &= {d for d, t in tags.items() if tag in t}
        until = datetime.now(UTC)
        since = until - RANGES.get(range_, RANGES[DEFAULT_RANGE])
        health = {}
        kb, dags = store(), sorted(chosen)
        try:
            rows = kb.dashboard_cases(since=since, until=until, dag_ids=dags)
            policy = kb.policy_decisions(since=since, until=until, dag_ids=dags)
            waiting = kb.open_escalations(since=since, until=until, dag_ids=dags)
            health["knowledge base"] = "reachable"
        except Exception as exc:  # noqa: BLE001 - shown as not reachable, not a 500
            rows, policy, waiting = [], [], []
            health["knowledge base"] = f"unreachable ({type(exc).__name__})"
        figures = ui_data.dashboard_figures(rows, since, until, policy)
        try:
            latest = kb.cases_by_id([t["latest_case_id"] for t in figures["top_fingerprints"]])
        except Exception:  # noqa: BLE001 - the knowledge base row above already says why
            latest = []
        figures["top_fingerprints"] = ui_data.latest_cases(figures["top_fingerprints"], latest)
        keys = [(r["dag_id"], r["run_id"], r["task_id"], r["map_index"], r["try_number"]) for r in waiting]
        figures["open_escalations"] = ui_data.open_escalations(
            waiting, until, airflow_facts.still_failed(keys)
        )
        from airflow_doctor.ui.health import probe

        health.update(probe())
        try:  # what actually failed in the last hour, from the messages the doctor recorded
            sent = kb.delivery_failures(since=until - timedelta(hours=1), dag_ids=dags)
            health.update(ui_data.delivery_health(sent))
        except Exception as exc:  # noqa: BLE001 - the knowledge base row above already says why
            log.warning("Could not count the last hour's delivery failures: %s", exc)
        return {
            "figures": figures,
            "health": health,
            "health_summary": ui_data.health_summary(health),
            "since": since,
            "until": until,
            "dags": sorted(readable),
            "tags": sorted({t for ts in tags.values() for t in ts}),
            "filters": {"dag_id": dag_id or "", "tag": tag or "", "range": range_},
        }

    @app.get("/dashboard", response_class=HTMLResponse)
    def dashboard(
        user: GetUserDep, dag_id: str | None = None, tag: str | None = None, range: str = DEFAULT_RANGE
    ):
        data = dashboard_data(user, dag_id or None, tag or None, range if range in RANGES else DEFAULT_RANGE)
        return render("dashboard.html", user=user.get_name(), ranges=list(RANGES), **data)

    @app.get("/api/dashboard")
    def dashboard_json(
        user: GetUserDep, dag_id: str | None = None, tag: str | None = None, range: str = DEFAULT_RANGE
    ):
        data = dashboard_data(user, dag_id or None, tag or None, range if range in RANGES else DEFAULT_RANGE)
        return JSONResponse(_jsonable(data))

    @app.get("/static/{name}")
    def static(name: str, user: GetUserDep):
        if name not in STATIC_FILES:
            raise HTTPException(404, "no such file")
        path = HERE / "static" / name
        return Response(
            path.read_bytes(),
            media_type=STATIC_FILES[name],
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    def _back_to_tab(ti, notice: str):
        query = urlencode(
            {
                "dag_id": ti.dag_id,
                "run_id": ti.run_id,
                "task_id": ti.task_id,
                "map_index": ti.map_index,
                "notice": notice,
            }
        )
        # Relative: /doctor/answer -> /doctor/tab, wherever the app is mounted.
        return RedirectResponse(f"tab?{query}", status_code=303)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        # The tab is framed by Airflow's own UI (same origin) and by nothing else; scripts come only
        # from /doctor/static (no inline script runs: the dashboard's chart data is a JSON block).
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return app


def _can_edit(user, dag_id: str) -> bool:
    """Whether the user may edit task instances of the DAG (the answer buttons are shown then)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.models.dag import DagModel

    return get_auth_manager().is_authorized_dag(
        method="PUT",
        access_entity=DagAccessEntity.TASK_INSTANCE,
        details=DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id)),
        user=user,
    )


def _readable_dags(user) -> set[str]:
    """The DAG ids the user may read (the auth manager's answer)."""
    from airflow.api_fastapi.app import get_auth_manager

    return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))


def _dag_tags(dag_ids: set[str]) -> dict[str, set[str]]:
    """dag_id -> its tags, from Airflow's metadata database (the API server may read it)."""
    from airflow.models.dag import DagTag
    from airflow.utils.session import create_session
    from sqlalchemy import select

    out: dict[str, set[str]] = {d: set() for d in dag_ids}
    if not dag_ids:
        return out
    with create_session() as session:
        for dag_id, name in session.execute(
            select(DagTag.dag_id, DagTag.name).where(DagTag.dag_id.in_(sorted(dag_ids)))
        ):
            out[dag_id].add(name)
    return out


def _fmt_seconds(value) -> str:
    if value is None:
        return "-"
    value = float(value)
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    if value < 172_800:
        return f"{value / 3600:.1f} h"
    return f"{value / 86_400:.1f} d"


def _jsonable(value):
    """Datetimes as ISO strings, sets as sorted lists, recursively."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, set):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value

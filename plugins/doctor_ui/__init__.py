"""The Doctor in the Airflow UI (issue 14): a Doctor tab on every task instance and a Doctor dashboard.

Registers, through Airflow 3's plugin interface:
- `fastapi_apps`: the app of plugins/doctor_ui/app.py mounted on the API server at `/doctor`;
- `external_views`: a "Doctor" tab on every task instance (`destination` task_instance; Airflow fills
  `{DAG_ID}`, `{RUN_ID}`, `{TASK_ID}`, `{MAP_INDEX}` in the href, URL-encoded) and a "Doctor" entry in
  the navigation bar (`destination` nav) opening the dashboard.

Every process that loads the plugins folder imports this module, failing tasks included (their
listener is in plugins/doctor_listener): the FastAPI app is therefore built on its first request,
in the API server only, and importing this module costs no FastAPI or Jinja import.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/doctor"


class _LazyApp:
    """An ASGI app that builds the Doctor FastAPI app (app.create_app) on its first call."""

    def __init__(self) -> None:
        self._app = None

    async def __call__(self, scope, receive, send):
        if self._app is None:
            from doctor_ui.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return "doctor_ui.app:create_app()"


class DoctorUIPlugin(AirflowPlugin):
    """The Doctor tab (task instance), the Doctor dashboard (nav) and their routes under /doctor."""

    name = "doctor_ui"
    fastapi_apps = [{"app": _LazyApp(), "url_prefix": URL_PREFIX, "name": "Doctor"}]
    external_views = [
        {
            "name": "Doctor",
            "href": (
                f"{URL_PREFIX}/tab?dag_id={{DAG_ID}}&run_id={{RUN_ID}}&task_id={{TASK_ID}}"
                "&map_index={MAP_INDEX}"
            ),
            "destination": "task_instance",
            "url_route": "doctor",
        },
        {
            "name": "Doctor",
            "href": f"{URL_PREFIX}/dashboard",
            "destination": "nav",
            "url_route": "doctor_dashboard",
            "icon": f"{URL_PREFIX}/static/doctor.svg",
        },
    ]

"""The doctor's Airflow plugins, registered through the `airflow.plugins` entry point.

- `DoctorListenerPlugin` registers the listener (`airflow_doctor.listeners.failures`) that reports
  every task instance that fails for good. Every task process loads it: importing this module costs
  no FastAPI, Jinja, database or HTTP import (tests/test_imports.py).
- `DoctorUIPlugin` adds the Doctor tab on every task instance and the Doctor dashboard
  (`external_views`), served by a FastAPI app mounted on the API server at `/doctor`
  (`fastapi_apps`). The app (`airflow_doctor.ui.app.create_app`) is built on its first request, in
  the API server only.

Airflow fills `{DAG_ID}`, `{RUN_ID}`, `{TASK_ID}` and `{MAP_INDEX}` in an external view's href,
URL-encoded; `destination` "task_instance" makes it a tab, "nav" an entry of the navigation bar.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_doctor.listeners import failures

URL_PREFIX = "/doctor"


class _LazyApp:
    """An ASGI app that builds the Doctor FastAPI app (ui.app.create_app) on its first call."""

    def __init__(self) -> None:
        self._app = None

    async def __call__(self, scope, receive, send):
        if self._app is None:
            from airflow_doctor.ui.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return "airflow_doctor.ui.app:create_app()"


class DoctorListenerPlugin(AirflowPlugin):
    """Reports every task instance that fails for good to the doctor (listeners/failures.py)."""

    name = "doctor_listener"
    listeners = [failures]


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

"""The doctor's only way into Airflow's state: the REST API v2, through `apache-airflow-client`.

Reads task instances and logs, posts asset events, clears task instances, writes notes. The
endpoint and credentials come from the connection `doctor_airflow_api` (host = API server URL,
login/password for `POST /auth/token`); the official client does not fetch tokens itself, so
this module does, and fetches a new one when the API answers 401.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
import urllib.request
from collections.abc import Callable
from functools import cached_property
from typing import Any, TypeVar

from include.doctor.config import API_CONN_ID, FAILURE_ASSET_NAME, FAILURE_ASSET_URI
from include.doctor.models import FailureRef

log = logging.getLogger(__name__)
T = TypeVar("T")

NOTE_MAX_CHARS = 1000  # the API rejects longer notes (AIRFLOW3_FACTS.md)


def _plain(model: Any) -> dict:
    """A client model as plain JSON data: enums as their values, datetimes as ISO strings."""
    return json.loads(model.to_json())


def default_api() -> AirflowAPI | None:
    """The AirflowAPI of connection doctor_airflow_api, or None when it cannot be built (logged):
    the callers degrade without it (the gate fails closed, notes and routing are skipped)."""
    try:
        return AirflowAPI()
    except Exception as exc:  # noqa: BLE001
        log.warning("No Airflow API client: %s", exc)
        return None


class AirflowAPIError(RuntimeError):
    """The Airflow API could not be reached or refused a request."""


def _connection_fields(conn_id: str) -> tuple[str, str | None, str | None]:
    """(base URL, login, password) of an HTTP connection, in a task, the API server or a CLI."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    host = conn.host or ""
    if "://" not in host:
        host = f"{conn.schema or 'http'}://{host}" + (f":{conn.port}" if conn.port else "")
    elif conn.port and host.count(":") < 2:
        host = f"{host}:{conn.port}"
    return host.rstrip("/"), conn.login, conn.password


class AirflowAPI:
    """A small, typed facade over the REST API v2 for what the doctor needs.

    Args:
        base_url: API server URL, e.g. http://127.0.0.1:8080; None means the connection's host.
        username, password: credentials for `/auth/token`; None means the connection's.
        conn_id: the HTTP connection to read when base_url is None (default `doctor_airflow_api`).
        timeout: seconds per HTTP request.
    """

    def __init__(
        self,
        base_url: str | None = None,
        username: str | None = None,
        password: str | None = None,
        conn_id: str = API_CONN_ID,
        timeout: float = 10.0,
    ) -> None:
        if base_url is None:
            base_url, username, password = _connection_fields(conn_id)
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self._token: str | None = None
        self._tags: dict[str, list[str]] = {}
        self._details: dict[str, dict] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def fetch_token(self) -> str:
        """A JWT from `POST /auth/token`.

        Raises:
            AirflowAPIError: the server refused the credentials or could not be reached.
        """
        body = json.dumps({"username": self.username, "password": self.password}).encode()
        req = urllib.request.Request(  # noqa: S310 - the configured API URL
            f"{self.base_url}/auth/token",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - the configured API URL
                return json.loads(resp.read())["access_token"]
        except Exception as exc:
            raise AirflowAPIError(f"cannot get a token from {self.base_url}/auth/token: {exc}") from exc

    @cached_property
    def _client(self):
        import airflow_client.client as ac

        config = ac.Configuration(host=self.base_url)
        return ac.ApiClient(config)

    def call(self, api_name: str, fn: Callable[[Any], T]) -> T:
        """Run `fn(api)` on the named client API, with a token, refreshing it once on 401."""
        import airflow_client.client as ac
        from airflow_client.client.exceptions import ApiException

        for attempt in (1, 2):
            if self._token is None:
                self._token = self.fetch_token()
            self._client.configuration.access_token = self._token
            api = getattr(ac, api_name)(self._client)
            try:
                return fn(api)
            except ApiException as exc:
                if exc.status == 401 and attempt == 1:
                    self._token = None
                    continue
                raise AirflowAPIError(f"{api_name}: HTTP {exc.status}: {(exc.body or '')[:500]}") from exc
            except Exception as exc:
                if isinstance(exc, AirflowAPIError):
                    raise
                raise AirflowAPIError(f"{api_name}: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    # -- assets -----------------------------------------------------------------------------

    def request_json(self, method: str, path: str, body: dict | None = None) -> Any:
        """One REST API call with the standard library only, with a token, refreshing it once on 401.

        For the listener's path, which runs inside every failing task's process: importing
        `airflow_client` costs 1.5-3 s of CPU there (python -X importtime, 2 cores), and a listener
        still busy 20 s after the task ended is killed by the supervisor ([core]
        task_success_overtime), losing the report. The doctor's own tasks use the official client.

        Raises:
            AirflowAPIError: an HTTP error status (with the body's start) or an unreachable server.
        """
        import urllib.error

        for attempt in (1, 2):
            if self._token is None:
                self._token = self.fetch_token()
            req = urllib.request.Request(  # noqa: S310 - the configured API URL
                f"{self.base_url}{path}",
                data=None if body is None else json.dumps(body).encode(),
                method=method,
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._token}"},
            )
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                    return json.loads(resp.read() or b"null")
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and attempt == 1:
                    self._token = None
                    continue
                raise AirflowAPIError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:500]!r}") from exc
            except OSError as exc:
                raise AirflowAPIError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    @cached_property
    def failure_asset_id(self) -> int:
        """Id of the asset `doctor://task-failures` (exact match; the API filter is a substring).

        Raises:
            AirflowAPIError: the asset does not exist yet (the doctor DAG was never parsed).
        """
        query = urllib.parse.urlencode({"uri_pattern": FAILURE_ASSET_URI})
        for asset in self.request_json("GET", f"/api/v2/assets?{query}").get("assets", []):
            if (
                asset.get("name") == FAILURE_ASSET_NAME
                or str(asset.get("uri")).rstrip("/") == FAILURE_ASSET_URI
            ):
                return int(asset["id"])
        raise AirflowAPIError(f"asset {FAILURE_ASSET_URI} not found: is the doctor DAG parsed?")

    def post_failure_event(self, ref: FailureRef) -> int:
        """Post an asset event for `doctor://task-failures` with the FailureRef in `extra`
        (`POST /api/v2/assets/events`; standard library only, see `request_json`).

        Returns:
            the asset event id.
        Raises:
            AirflowAPIError: the API refused or could not be reached.
        """
        body = {"asset_id": self.failure_asset_id, "extra": {"failure": ref.model_dump(mode="json")}}
        return int(self.request_json("POST", "/api/v2/assets/events", body)["id"])

    # -- task instances ---------------------------------------------------------------------

    def get_task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict:
        """The task instance as a dict (state, try_number, operator, start_date, end_date, note, ...).

        Raises:
            AirflowAPIError: not found or API unreachable.
        """
        if map_index >= 0:
            ti = self.call(
                "TaskInstanceApi",
                lambda api: api.get_mapped_task_instance(
                    dag_id, run_id, task_id, map_index, _request_timeout=self.timeout
                ),
            )
        else:
            ti = self.call(
                "TaskInstanceApi",
                lambda api: api.get_task_instance(dag_id, run_id, task_id, _request_timeout=self.timeout),
            )
        return _plain(ti)

    def get_try(self, ref: FailureRef, try_number: int | None = None) -> dict:
        """One try of a task instance (state, start_date, end_date) from its try history.

        Raises:
            AirflowAPIError: the try does not exist.
        """
        number = try_number or ref.try_number
        kwargs = {"map_index": ref.map_index} if ref.map_index >= 0 else {}
        detail = self.call(
            "TaskInstanceApi",
            lambda api: api.get_task_instance_try_details(
                ref.dag_id, ref.run_id, ref.task_id, number, _request_timeout=self.timeout, **kwargs
            ),
        )
        return _plain(detail)

    def get_log(self, ref: FailureRef, max_pages: int = 20) -> list:
        """The failed try's log: structured records (dicts) or plain strings, oldest first.

        Follows continuation tokens for at most `max_pages` pages.
        """
        records: list = []
        token = None
        for _ in range(max_pages):
            kwargs: dict[str, Any] = {"full_content": True, "accept": "application/json"}
            if ref.map_index >= 0:
                kwargs["map_index"] = ref.map_index
            if token:
                kwargs["token"] = token
            resp = self.call(
                "TaskInstanceApi",
                lambda api, kw=kwargs: api.get_log_without_preload_content(
                    ref.dag_id,
                    ref.run_id,
                    ref.task_id,
                    ref.try_number,
                    _request_timeout=self.timeout * 3,
                    **kw,
                ),
            )
            payload = json.loads(resp.data or b"{}")
            content = payload.get("content") or []
            records.extend(content if isinstance(content, list) else [content])
            token = payload.get("continuation_token")
            if not token or not content:
                break
        return records

    def clear_task_instance(self, ref: FailureRef, note: str | None = None) -> list[dict]:
        """Clear the failed task instance and its failed/upstream_failed downstream tasks (dry_run false).

        Returns:
            the cleared task instances as dicts (empty when nothing was failed any more).
        Raises:
            AirflowAPIError: the API refused the clear.
        """
        from airflow_client.client.models.clear_task_instances_body import ClearTaskInstancesBody

        task_ref: Any = [ref.task_id, ref.map_index] if ref.map_index >= 0 else ref.task_id
        body = ClearTaskInstancesBody.from_dict(
            {
                "dry_run": False,
                "only_failed": True,
                "reset_dag_runs": True,
                "include_downstream": True,
                "dag_run_id": ref.run_id,
                "task_ids": [task_ref],
                **({"note": note[:NOTE_MAX_CHARS]} if note else {}),
            }
        )
        resp = self.call(
            "TaskInstanceApi",
            lambda api: api.post_clear_task_instances(ref.dag_id, body, _request_timeout=self.timeout),
        )
        return [_plain(ti) for ti in resp.task_instances]

    def list_failed_task_instances(self, since, limit: int = 1000) -> list[dict]:
        """Task instances of every DAG in state `failed` whose end_date >= `since` (datetime, UTC)."""
        resp = self.call(
            "TaskInstanceApi",
            lambda api: api.get_task_instances(
                "~", "~", state=["failed"], end_date_gte=since, limit=limit, _request_timeout=self.timeout * 3
            ),
        )
        return [_plain(ti) for ti in resp.task_instances]

    def set_task_instance_note(self, ref: FailureRef, note: str) -> None:
        """Write the note of a task instance (the UI shows it on the instance), cut to 1000 characters."""
        from airflow_client.client.models.patch_task_instance_body import PatchTaskInstanceBody

        body = PatchTaskInstanceBody(note=note[:NOTE_MAX_CHARS])
        if ref.map_index >= 0:
            self.call(
                "TaskInstanceApi",
                lambda api: api.patch_task_instance_by_map_index(
                    ref.dag_id,
                    ref.run_id,
                    ref.task_id,
                    ref.map_index,
                    body,
                    update_mask=["note"],
                    _request_timeout=self.timeout,
                ),
            )
        else:
            self.call(
                "TaskInstanceApi",
                lambda api: api.patch_task_instance(
                    ref.dag_id,
                    ref.run_id,
                    ref.task_id,
                    body,
                    update_mask=["note"],
                    _request_timeout=self.timeout,
                ),
            )

    def set_dag_run_note(self, dag_id: str, run_id: str, note: str) -> None:
        """Write the note of a DAG run, cut to 1000 characters."""
        from airflow_client.client.models.dag_run_patch_body import DAGRunPatchBody

        body = DAGRunPatchBody(note=note[:NOTE_MAX_CHARS])
        self.call(
            "DagRunApi",
            lambda api: api.patch_dag_run(
                dag_id, run_id, body, update_mask=["note"], _request_timeout=self.timeout
            ),
        )

    def get_dag_tags(self, dag_id: str) -> list[str]:
        """Tag names of a DAG (read once per client: a client lives for one doctor task)."""
        if dag_id not in self._tags:
            dag = self.call("DAGApi", lambda api: api.get_dag(dag_id, _request_timeout=self.timeout))
            self._tags[dag_id] = [t.name for t in (dag.tags or [])]
        return list(self._tags[dag_id])

    def get_dag_details(self, dag_id: str) -> dict:
        """A DAG's details as a dict (owners, tags, default_args, ...), read once per client."""
        if dag_id not in self._details:
            self._details[dag_id] = _plain(
                self.call("DAGApi", lambda api: api.get_dag_details(dag_id, _request_timeout=self.timeout))
            )
        return dict(self._details[dag_id])

    def get_dag_run(self, dag_id: str, run_id: str) -> dict:
        """A DAG run as a dict (state, start_date, end_date, conf, note, ...)."""
        return _plain(
            self.call("DagRunApi", lambda api: api.get_dag_run(dag_id, run_id, _request_timeout=self.timeout))
        )

    def ensure_pool(self, name: str, slots: int, description: str) -> bool:
        """Create the pool `name` with `slots` slots if it does not exist; an existing pool is left as is.

        Returns:
            True if the pool was created now.
        Raises:
            AirflowAPIError: the API refused.
        """
        from airflow_client.client.models.pool_body import PoolBody

        try:
            self.call("PoolApi", lambda api: api.get_pool(name, _request_timeout=self.timeout))
            return False
        except AirflowAPIError as exc:
            if "HTTP 404" not in str(exc):
                raise
        body = PoolBody(name=name, slots=slots, description=description, include_deferred=False)
        self.call("PoolApi", lambda api: api.post_pool(body, _request_timeout=self.timeout))
        return True

    def ui_url(self, path: str) -> str:
        """An absolute link into the Airflow UI."""
        return f"{self.base_url}/{path.lstrip('/')}"

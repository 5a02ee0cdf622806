"""The doctor's only way into Airflow's state: the REST API v2, through one light httpx client.

Reads task instances and logs, posts asset events, clears task instances, writes notes; the demo,
the end-to-end tests and the benchmarks use the same client to trigger runs, set Variables and
answer approvals, and the Doctor UI uses it to act as a person (`AirflowAPI.for_user`: the
person's own token, so Airflow checks their permission) and to read `/api/v2/monitor/health`.

`AirflowApiHook` is the provider-shaped way to get the client: connection type `airflow_api`,
default connection `doctor_airflow_api` (host = API server URL, login/password for
`POST /auth/token`); credentials never travel as arguments, and the client is built on first use.

Why httpx and not `apache-airflow-client`: importing the official client costs 1.5-3 s of CPU in
every task process (bench/startup measures both); httpx ships with Airflow and
imports in about 0.1 s. The request and response bodies of the endpoints the doctor uses are the
Pydantic models below (fields the doctor reads are typed, the rest is kept as given); public
methods return plain JSON data (dicts without null fields, datetimes as ISO strings), the shape
the official client's `to_json()` gave; a task instance or try also carries `dag_version_number`,
the `version_number` of its nested `dag_version` (Airflow 3.3's DagVersionResponse).

One token logic: a JWT from `POST /auth/token`, fetched on first use and fetched again once when
the API refuses it: 401 (expired) or 403 "Invalid JWT token" (e.g. signed with a secret the API
server no longer uses; airflow/api_fastapi/core_api/security.py).

Timeouts and retries (see `AirflowAPI`): every request has a timeout; a request that never reached
the server (connection refused, connect timeout) is retried up to `retries` times with exponential
backoff (0.5 s, 1 s, ...); an HTTP 502/503/504, a read timeout or a dropped connection is retried
the same way only for idempotent methods (GET, PUT, PATCH, DELETE), never for a POST, so that
an asset event or a clear is not sent twice.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseHook
from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field

from airflow_doctor.models import FailureRef
from airflow_doctor.settings import API_CONN_ID, FAILURE_ASSET_NAME, FAILURE_ASSET_URI

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

NOTE_MAX_CHARS = 1000  # the API rejects longer notes (Airflow 3.3's REST API v2)
RETRY_STATUSES = frozenset({502, 503, 504})  # a proxy or a restarting API server: worth a retry
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})
BACKOFF_SECONDS = 0.5  # first retry waits this long, each next one twice as long
#: States of a task instance whose latest try ran to an end: what `task_history` lists by default.
HISTORY_STATES = ("success", "failed", "up_for_retry")


# -- request and response bodies (REST API v2, Airflow 3.3) --------------------------------------


class _Body(BaseModel):
    """A request body: extra keys are a programming error."""

    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    """A response body: the fields the doctor reads are typed; any other field is kept as given."""

    model_config = ConfigDict(extra="allow")

    def plain(self) -> dict:
        """As plain JSON data, without null fields (the official client's `to_json()` shape)."""
        return self.model_dump(mode="json", exclude_none=True)


class TokenResponse(_Response):
    access_token: str


class DagVersion(_Response):
    """Airflow 3.3's DagVersionResponse, nested in task instances and tries: the version of the
    DAG (its serialised form and bundle version) a try ran on. `version_number` counts from 1 per
    DAG and grows each time the dag-processor stores a changed DAG."""

    version_number: int | None = None
    bundle_name: str | None = None
    bundle_version: str | None = None


class _RanOnVersion(_Response):
    """A task instance or one of its tries: `dag_version` is the nested DagVersionResponse as given
    (null before Airflow recorded one), and `.plain()` adds its number as `dag_version_number`."""

    dag_version: DagVersion | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def dag_version_number(self) -> int | None:
        """The DAG version's `version_number` the try ran on (None when unknown)."""
        return self.dag_version.version_number if self.dag_version else None


class TaskInstance(_RanOnVersion):
    dag_id: str
    dag_run_id: str
    task_id: str
    map_index: int = -1
    try_number: int | None = None
    max_tries: int | None = None
    state: str | None = None
    operator: str | None = None
    queued_when: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    note: str | None = None
    rendered_map_index: str | None = None


class TaskInstanceCollection(_Response):
    task_instances: list[TaskInstance]
    total_entries: int | None = None


class TaskInstanceTry(_RanOnVersion):
    dag_id: str
    dag_run_id: str
    task_id: str
    map_index: int = -1
    try_number: int
    max_tries: int | None = None
    state: str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None


class TaskInstanceTryCollection(_Response):
    task_instances: list[TaskInstanceTry]
    total_entries: int | None = None


class LogPage(_Response):
    content: list[Any] | str | None = None
    continuation_token: str | None = None


class EventLog(_Response):
    """One audit-log record (`GET /api/v2/eventLogs`): what Airflow itself recorded about a task
    instance (a heartbeat timeout, a state set through the UI or REST API)."""

    event: str
    when: datetime | None = None
    try_number: int | None = None
    owner: str | None = None
    extra: str | None = None


class EventLogCollection(_Response):
    event_logs: list[EventLog] = Field(default_factory=list)


class DagTag(_Response):
    name: str


class Dag(_Response):
    dag_id: str
    is_paused: bool | None = None
    tags: list[DagTag] = Field(default_factory=list)


class DagRun(_Response):
    dag_id: str
    dag_run_id: str
    state: str | None = None
    queued_at: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    conf: dict | None = None
    note: str | None = None


class DagRunCollection(_Response):
    dag_runs: list[DagRun]
    total_entries: int


class Asset(_Response):
    id: int
    name: str | None = None
    uri: str | None = None


class AssetCollection(_Response):
    assets: list[Asset]


class AssetEvent(_Response):
    id: int


class Pool(_Response):
    name: str
    slots: int


class Plugin(_Response):
    name: str


class PluginCollection(_Response):
    plugins: list[Plugin]


class HITLDetail(_Response):
    subject: str
    body: str | None = None
    options: list[str] = Field(default_factory=list)
    chosen_options: list[str] | None = None
    response_received: bool | None = None
    task_instance: TaskInstance


class HITLDetailCollection(_Response):
    hitl_details: list[HITLDetail]


class XComEntry(_Response):
    key: str
    value: Any = None


class Variable(_Response):
    key: str
    value: str | None = None


class TokenBody(_Body):
    username: str | None
    password: str | None


class AssetEventBody(_Body):
    asset_id: int
    extra: dict


class ClearTaskInstancesBody(_Body):
    dry_run: bool = False  # the API's default is TRUE (Airflow 3.3's REST API v2)
    only_failed: bool = True
    reset_dag_runs: bool = True
    include_downstream: bool = True
    dag_run_id: str
    task_ids: list[str | tuple[str, int]]
    note: str | None = Field(default=None, max_length=NOTE_MAX_CHARS)


class NoteBody(_Body):
    note: str = Field(max_length=NOTE_MAX_CHARS)


class PoolBody(_Body):
    name: str
    slots: int
    description: str
    include_deferred: bool = False


class DagPatchBody(_Body):
    is_paused: bool


class TriggerDagRunBody(_Body):
    logical_date: datetime | None = None  # Airflow 3: null means "now", and the key must be present
    conf: dict = Field(default_factory=dict)
    note: str | None = Field(default=None, max_length=NOTE_MAX_CHARS)


class Health(_Response):
    """`GET /api/v2/monitor/health`: one {"status": "healthy" | "unhealthy", ...} per component."""

    metadatabase: dict | None = None
    scheduler: dict | None = None
    triggerer: dict | None = None
    dag_processor: dict | None = None


class VariableBody(_Body):
    key: str
    value: str
    description: str | None = None


class HITLResponseBody(_Body):
    chosen_options: list[str] = Field(min_length=1)
    params_input: dict = Field(default_factory=dict)


# -- the client -----------------------------------------------------------------------------------


def default_api() -> AirflowAPI | None:
    """The AirflowAPI of connection doctor_airflow_api (`AirflowApiHook`), or None when it cannot be
    built (logged): the callers degrade without it (the gate fails closed, notes and routing are
    skipped)."""
    try:
        return AirflowApiHook().client
    except Exception as exc:  # noqa: BLE001
        log.warning("No Airflow API client: %s", exc)
        return None


class AirflowAPIError(RuntimeError):
    """The Airflow API could not be reached, refused a request or answered something unreadable.

    Attributes:
        status: the HTTP status (None when no answer came, or the answer was not valid JSON data).
        detail: what the API said about a refusal: the `detail` of its JSON answer, else the start
            of its body (at most 500 characters); None when no answer came.
    """

    def __init__(self, message: str, status: int | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


def connection_base_url(conn) -> str:
    """The API server's base URL from a connection: its host when that is a URL (plus the port when
    the URL names none), else `schema://host:port` with schema `http` by default.

    Args:
        conn: an Airflow Connection (host, schema, port).
    Returns:
        e.g. "http://127.0.0.1:8080", without a trailing slash.
    """
    host = conn.host or ""
    if "://" not in host:
        host = f"{conn.schema or 'http'}://{host}" + (f":{conn.port}" if conn.port else "")
    elif conn.port and host.count(":") < 2:
        host = f"{host}:{conn.port}"
    return host.rstrip("/")


def _connection_fields(conn_id: str) -> tuple[str, str | None, str | None]:
    """(base URL, login, password) of an HTTP connection, in a task, the API server or a CLI."""
    conn = AirflowApiHook.get_connection(conn_id)
    return connection_base_url(conn), conn.login, conn.password


def _detail(resp: httpx.Response) -> str:
    """What an error answer says: its JSON `detail` (as text), else the start of its body."""
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:500]
    detail = data.get("detail") if isinstance(data, dict) else None
    return str(detail if detail is not None else data)[:500]


def _seg(value: str) -> str:
    """One path segment, percent-encoded (run ids hold ':' and '+')."""
    return quote(str(value), safe="~")


def _ti_path(dag_id: str, run_id: str, task_id: str) -> str:
    return f"/api/v2/dags/{_seg(dag_id)}/dagRuns/{_seg(run_id)}/taskInstances/{_seg(task_id)}"


class AirflowAPI:
    """A small, typed facade over the REST API v2 for what the doctor needs.

    Args:
        base_url: API server URL, e.g. http://127.0.0.1:8080; None means the connection's host.
        username, password: credentials for `/auth/token`; None means the connection's.
        conn_id: the connection to read when base_url is None (default `doctor_airflow_api`);
            `AirflowApiHook` is the way to build a client from a connection.
        timeout: seconds per HTTP request (connect, read and write each; logs get 3x).
        retries: extra attempts after a connection error, or after a 502/503/504 or read timeout
            of an idempotent request (module docstring); 0 disables retries.
    Raises:
        airflow.exceptions.AirflowNotFoundException: base_url is None and the connection is missing.
    """

    def __init__(
        self,
        base_url: str | None = None,
        username: str | None = None,
        password: str | None = None,
        conn_id: str = API_CONN_ID,
        timeout: float = 10.0,
        retries: int = 2,
    ) -> None:
        if base_url is None:
            base_url, username, password = _connection_fields(conn_id)
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self.retries = max(0, retries)
        self._token: str | None = None
        self._as_user = False  # True: a person's token, never replaced by one of our own
        self._tags: dict[str, list[str]] = {}
        self._details: dict[str, dict] = {}

    @classmethod
    def for_user(
        cls, base_url: str, token: str | None, timeout: float = 10.0, retries: int = 2
    ) -> AirflowAPI:
        """A client that acts as a person: every request carries their own JWT, so Airflow checks
        their permission exactly as for the UI's buttons. It never fetches a token of its own: a
        refused or missing token is the person's answer (HTTP 401/403), not a reason to log in.

        Args:
            base_url: the API server's URL, e.g. http://127.0.0.1:8080.
            token: the person's JWT (from their request's `Authorization: Bearer` or `_token`
                cookie); None sends no credential (Airflow answers 401).
            timeout, retries: as for the constructor.
        """
        api = cls(base_url, None, None, timeout=timeout, retries=retries)
        api._token = token
        api._as_user = True
        return api

    # -- plumbing ---------------------------------------------------------------------------

    @cached_property
    def _http(self) -> httpx.Client:
        import httpx  # ~0.1 s; imported on first request, not with this module

        return httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(self.timeout),
            headers={"Accept": "application/json"},
            follow_redirects=False,
            # Certificates are only read for https: loading the CA bundle costs ~20 ms per client.
            verify=not self.base_url.startswith("http://"),
        )

    def close(self) -> None:
        """Close the pooled HTTP connections (the client also works again after this)."""
        if "_http" in self.__dict__:
            self.__dict__.pop("_http").close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict | None = None,
        auth: bool = True,
        timeout: float | None = None,
    ) -> httpx.Response:
        """One request with retries on transport errors and 502/503/504 (module docstring).

        Raises:
            AirflowAPIError: unreachable after the retries, or an HTTP status >= 400 other than a
                first 401 (which `_request` answers by fetching a new token).
        """
        import httpx

        attempts = 1 + self.retries
        for attempt in range(1, attempts + 1):
            headers = {"Authorization": f"Bearer {self._token}"} if auth and self._token else {}
            try:
                resp = self._http.request(
                    method,
                    path,
                    json=json,
                    # None, not {}: httpx drops a query already in `path` when given empty params.
                    params={k: v for k, v in (params or {}).items() if v is not None} or None,
                    headers=headers,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as exc:
                never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                retry = attempt < attempts and (never_sent or method in IDEMPOTENT_METHODS)
                if retry:
                    self._backoff(attempt, method, path, f"{type(exc).__name__}: {exc}")
                    continue
                raise AirflowAPIError(
                    f"{method} {path}: {type(exc).__name__}: {exc or 'no answer'} "
                    f"({attempt} attempt(s), timeout {timeout or self.timeout:g}s)"
                ) from exc
            if resp.status_code in RETRY_STATUSES and method in IDEMPOTENT_METHODS and attempt < attempts:
                self._backoff(attempt, method, path, f"HTTP {resp.status_code}")
                continue
            if resp.status_code >= 400:
                raise AirflowAPIError(
                    f"{method} {path}: HTTP {resp.status_code}: {resp.text[:500]}",
                    status=resp.status_code,
                    detail=_detail(resp),
                )
            return resp
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int, method: str, path: str, why: str) -> None:
        delay = BACKOFF_SECONDS * 2 ** (attempt - 1)
        log.warning("%s %s: %s; retrying in %.1fs", method, path, why, delay)
        time.sleep(delay)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """`_send` with a token, fetching a new one once when the API refuses the token (never for a
        client acting as a person, `for_user`)."""
        if self._as_user:
            return self._send(method, path, **kwargs)
        if self._token is None:
            self._token = self.fetch_token()
        try:
            return self._send(method, path, **kwargs)
        except AirflowAPIError as exc:
            if not (exc.status == 401 or (exc.status == 403 and "Invalid JWT token" in str(exc))):
                raise
        self._token = self.fetch_token()  # expired or revoked: one new token, one more try
        return self._send(method, path, **kwargs)

    @staticmethod
    def _json(resp: httpx.Response) -> Any:
        """The body as JSON data (None for an empty body).

        Raises:
            AirflowAPIError: the body is not JSON.
        """
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError as exc:
            raise AirflowAPIError(
                f"{resp.request.method} {resp.request.url.path}: HTTP {resp.status_code} but the body is "
                f"not JSON: {resp.text[:200]!r}"
            ) from exc

    def _call(self, model: type[_Response], method: str, path: str, **kwargs: Any) -> Any:
        """One request whose answer must be `model`; returns the validated model.

        Raises:
            AirflowAPIError: as `_request`, or the answer is not JSON or not shaped like `model`.
        """
        resp = self._request(method, path, **kwargs)
        data = self._json(resp)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise AirflowAPIError(
                f"{method} {path}: unexpected answer for {model.__name__}: "
                f"{exc.error_count()} error(s), first: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}"
            ) from exc

    def fetch_token(self) -> str:
        """A JWT from `POST /auth/token`.

        Raises:
            AirflowAPIError: the server refused the credentials, could not be reached, or did not
                answer with an access_token.
        """
        body = TokenBody(username=self.username, password=self.password).model_dump()
        try:
            resp = self._send("POST", "/auth/token", json=body, auth=False)
            return TokenResponse.model_validate(self._json(resp)).access_token
        except (AirflowAPIError, ValidationError) as exc:
            raise AirflowAPIError(
                f"cannot get a token from {self.base_url}/auth/token: {exc}",
                status=getattr(exc, "status", None),
            ) from exc

    def request_json(self, method: str, path: str, body: dict | None = None) -> Any:
        """One REST API call with a token (refreshed once on 401); the answer as JSON data.

        Args:
            method: HTTP method, e.g. "GET".
            path: path and query from the API root, e.g. "/api/v2/assets?name_pattern=x".
            body: JSON body, or None for none.
        Returns:
            the decoded JSON answer (None for an empty body).
        Raises:
            AirflowAPIError: an HTTP error status (with the body's start), an unreachable server or
                a body that is not JSON.
        """
        return self._json(self._request(method, path, json=body))

    def get_health(self) -> dict:
        """Airflow's own health (`GET /api/v2/monitor/health`, which needs no token).

        Returns:
            {component: {"status": "healthy" | "unhealthy", ...}} for metadatabase, scheduler,
            triggerer and dag_processor (a component the API server does not report is absent).
        Raises:
            AirflowAPIError: the API server could not be reached or answered an error or no JSON.
        """
        return self._call_without_token(Health, "GET", "/api/v2/monitor/health").plain()

    def _call_without_token(self, model: type[_Response], method: str, path: str) -> Any:
        resp = self._send(method, path, auth=False)
        try:
            return model.model_validate(self._json(resp))
        except ValidationError as exc:
            raise AirflowAPIError(f"{method} {path}: unexpected answer for {model.__name__}") from exc

    # -- assets -----------------------------------------------------------------------------

    @cached_property
    def failure_asset_id(self) -> int:
        """Id of the asset `doctor://task-failures` (exact match; the API filter is a substring).

        Raises:
            AirflowAPIError: the asset does not exist yet (the doctor DAG was never parsed).
        """
        found = self._call(
            AssetCollection, "GET", "/api/v2/assets", params={"uri_pattern": FAILURE_ASSET_URI}
        )
        for asset in found.assets:
            if asset.name == FAILURE_ASSET_NAME or str(asset.uri).rstrip("/") == FAILURE_ASSET_URI:
                return asset.id
        raise AirflowAPIError(f"asset {FAILURE_ASSET_URI} not found: is the doctor DAG parsed?")

    def post_failure_event(self, ref: FailureRef) -> int:
        """Post an asset event for `doctor://task-failures` with the FailureRef in `extra`
        (`POST /api/v2/assets/events`; never retried after it may have reached the server).

        Returns:
            the asset event id.
        Raises:
            AirflowAPIError: the API refused or could not be reached.
        """
        body = AssetEventBody(asset_id=self.failure_asset_id, extra={"failure": ref.model_dump(mode="json")})
        return self._call(AssetEvent, "POST", "/api/v2/assets/events", json=body.model_dump(mode="json")).id

    # -- task instances ---------------------------------------------------------------------

    def get_task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict:
        """The task instance as a dict (state, try_number, operator, start_date, end_date, note, ...).

        Raises:
            AirflowAPIError: not found or API unreachable.
        """
        path = _ti_path(dag_id, run_id, task_id) + (f"/{int(map_index)}" if map_index >= 0 else "")
        return self._call(TaskInstance, "GET", path).plain()

    def get_try(self, ref: FailureRef, try_number: int | None = None) -> dict:
        """One try of a task instance (state, start_date, end_date, dag_version_number) from its try
        history.

        Raises:
            AirflowAPIError: the try does not exist.
        """
        number = try_number or ref.try_number
        params = {"map_index": ref.map_index} if ref.map_index >= 0 else None
        path = f"{_ti_path(ref.dag_id, ref.run_id, ref.task_id)}/tries/{int(number)}"
        return self._call(TaskInstanceTry, "GET", path, params=params).plain()

    def list_tries(self, ref: FailureRef) -> list[dict]:
        """Every try of the task instance `ref` names (its run, task and map_index; ref.try_number is
        not a filter), oldest first: `GET .../taskInstances/{task_id}/tries`, or
        `.../{task_id}/{map_index}/tries` for a mapped instance. One request: Airflow 3.3 answers
        all tries at once (its task instance history plus the current try, unpaged).

        Returns:
            dicts with dag_run_id, try_number, state, start_date, end_date, `dag_version` (the
            nested DagVersionResponse) and `dag_version_number` (int) when Airflow recorded them.
        Raises:
            AirflowAPIError: HTTP 404 when the task instance does not exist, or unreachable.
        """
        path = _ti_path(ref.dag_id, ref.run_id, ref.task_id) + (
            f"/{int(ref.map_index)}/tries" if ref.map_index >= 0 else "/tries"
        )
        tries = self._call(TaskInstanceTryCollection, "GET", path).task_instances
        return [t.plain() for t in sorted(tries, key=lambda t: t.try_number)]

    def get_log(self, ref: FailureRef, max_pages: int = 20) -> list:
        """The failed try's log: structured records (dicts) or plain strings, oldest first.

        Follows continuation tokens for at most `max_pages` pages; each page may take 3x `timeout`.

        Raises:
            AirflowAPIError: the API refused or could not be reached.
        """
        records: list = []
        token = None
        path = f"{_ti_path(ref.dag_id, ref.run_id, ref.task_id)}/logs/{int(ref.try_number)}"
        for _ in range(max_pages):
            params = {
                "full_content": "true",
                "map_index": ref.map_index if ref.map_index >= 0 else None,
                "token": token,
            }
            page = self._call(LogPage, "GET", path, params=params, timeout=self.timeout * 3)
            content = page.content or []
            records.extend(content if isinstance(content, list) else [content])
            token = page.continuation_token
            if not token or not content:
                break
        return records

    def get_event_logs(self, ref: FailureRef, events: list[str], limit: int = 20) -> list[dict]:
        """Audit-log records of the failed try (its dag_id, run_id, task_id, map_index and
        try_number) whose event is one of `events`, oldest first.

        Raises:
            AirflowAPIError: the API refused (the account may lack audit-log read access) or could
                not be reached.
        """
        params = {
            "dag_id": ref.dag_id,
            "run_id": ref.run_id,
            "task_id": ref.task_id,
            "map_index": ref.map_index,
            "try_number": int(ref.try_number),
            "included_events": events,
            "order_by": "when",
            "limit": limit,
        }
        page = self._call(EventLogCollection, "GET", "/api/v2/eventLogs", params=params)
        return [e.plain() for e in page.event_logs]

    def clear_task_instance(self, ref: FailureRef, note: str | None = None) -> list[dict]:
        """Clear the failed task instance and its failed/upstream_failed downstream tasks (dry_run false).

        Returns:
            the cleared task instances as dicts (empty when nothing was failed any more).
        Raises:
            AirflowAPIError: the API refused the clear.
        """
        return self.clear_task_instances(ref.dag_id, ref.run_id, ref.task_id, ref.map_index, note=note)

    def clear_task_instances(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1, note: str | None = None
    ) -> list[dict]:
        """Clear one task instance if it failed, and its failed/upstream_failed downstream tasks, as
        the UI's Clear button does (`POST /api/v2/dags/{dag_id}/clearTaskInstances`, dry_run false,
        only_failed; never retried after it may have reached the server).

        Args:
            map_index: the mapped instance, or -1 for an unmapped task.
            note: written on the cleared task instances (cut to 1000 characters).
        Returns:
            the cleared task instances as dicts (empty when nothing was failed any more).
        Raises:
            AirflowAPIError: the API refused the clear (403: the caller may not edit the DAG's task
                instances) or could not be reached.
        """
        task_ref: str | tuple[str, int] = (task_id, map_index) if map_index >= 0 else task_id
        body = ClearTaskInstancesBody(
            dag_run_id=run_id, task_ids=[task_ref], note=note[:NOTE_MAX_CHARS] if note else None
        )
        resp = self._call(
            TaskInstanceCollection,
            "POST",
            f"/api/v2/dags/{_seg(dag_id)}/clearTaskInstances",
            json=body.model_dump(mode="json", exclude_none=True),
        )
        return [ti.plain() for ti in resp.task_instances]

    def list_task_instances(
        self,
        dag_id: str = "~",
        run_id: str = "~",
        *,
        task_id: str | None = None,
        state: list[str] | None = None,
        end_date_gte: datetime | None = None,
        limit: int = 1000,
        timeout: float | None = None,
    ) -> list[dict]:
        """Task instances matching the filters ("~" = every DAG or every run), as dicts.

        Args:
            limit: at most this many (the API's page; the server caps it at [api] maximum_page_limit).
        Raises:
            AirflowAPIError: the API refused or could not be reached.
        """
        params = {
            "task_id": task_id,
            "state": state,
            "end_date_gte": end_date_gte.isoformat() if end_date_gte else None,
            "limit": limit,
        }
        resp = self._call(
            TaskInstanceCollection,
            "GET",
            f"/api/v2/dags/{_seg(dag_id)}/dagRuns/{_seg(run_id)}/taskInstances",
            params=params,
            timeout=timeout,
        )
        return [ti.plain() for ti in resp.task_instances]

    def task_history(
        self,
        dag_id: str,
        task_id: str,
        *,
        map_index: int = -1,
        limit: int = 10,
        exclude_run_id: str | None = None,
        state: tuple[str, ...] | list[str] | None = HISTORY_STATES,
    ) -> list[dict]:
        """One task's task instances across DAG runs, newest first: `GET /api/v2/dags/{dag_id}/
        dagRuns/~/taskInstances?task_id=..&map_index=..&state=..&order_by=-start_date&limit=..`
        (one request; the parameter names are those of Airflow 3.3's `get_task_instances` route).

        A task instance is the latest try of its run; the state filter (by default the ends of a try
        that ran, HISTORY_STATES) keeps out task instances that never started, which Postgres would
        otherwise sort first (null start_date, descending).

        Args:
            map_index: the mapped instance to follow (the same index in every run), or -1 for an
                unmapped task.
            limit: at most this many task instances (the server caps it at [api] maximum_page_limit,
                100 by default).
            exclude_run_id: a DAG run left out (the failed one); one more is asked for in its place.
            state: the states to list; None or empty for every state.
        Returns:
            dicts as `get_task_instance` gives (dag_run_id, try_number, state, start_date, end_date,
            dag_version_number, ...), newest start_date first.
        Raises:
            AirflowAPIError: the API refused or could not be reached.
        """
        if limit <= 0:
            return []
        params = {
            "task_id": task_id,
            "map_index": [int(map_index)],
            "state": list(state) if state else None,
            "order_by": ["-start_date"],
            "limit": limit + (1 if exclude_run_id is not None else 0),
        }
        resp = self._call(
            TaskInstanceCollection,
            "GET",
            f"/api/v2/dags/{_seg(dag_id)}/dagRuns/~/taskInstances",
            params=params,
        )
        return [ti.plain() for ti in resp.task_instances if ti.dag_run_id != exclude_run_id][:limit]

    def list_failed_task_instances(self, since, limit: int = 1000) -> list[dict]:
        """Task instances of every DAG in state `failed` whose end_date >= `since` (datetime, UTC)."""
        return self.list_task_instances(
            state=["failed"], end_date_gte=since, limit=limit, timeout=self.timeout * 3
        )

    def set_task_instance_note(self, ref: FailureRef, note: str) -> None:
        """Write the note of a task instance (the UI shows it on the instance), cut to 1000 characters.

        Raises:
            AirflowAPIError: the API refused or could not be reached.
        """
        path = _ti_path(ref.dag_id, ref.run_id, ref.task_id) + (
            f"/{int(ref.map_index)}" if ref.map_index >= 0 else ""
        )
        body = NoteBody(note=note[:NOTE_MAX_CHARS]).model_dump()
        self._request("PATCH", path, json=body, params={"update_mask": ["note"]})

    # -- DAGs and DAG runs ------------------------------------------------------------------

    def set_dag_run_note(self, dag_id: str, run_id: str, note: str) -> None:
        """Write the note of a DAG run, cut to 1000 characters.

        Raises:
            AirflowAPIError: the API refused or could not be reached.
        """
        body = NoteBody(note=note[:NOTE_MAX_CHARS]).model_dump()
        self._request(
            "PATCH",
            f"/api/v2/dags/{_seg(dag_id)}/dagRuns/{_seg(run_id)}",
            json=body,
            params={"update_mask": ["note"]},
        )

    def get_dag(self, dag_id: str) -> dict:
        """A DAG as a dict (dag_id, is_paused, tags [{name, ...}], ...).

        Raises:
            AirflowAPIError: HTTP 404 when the dag-processor has not parsed it (yet), or unreachable.
        """
        return self._call(Dag, "GET", f"/api/v2/dags/{_seg(dag_id)}").plain()

    def get_dag_tags(self, dag_id: str) -> list[str]:
        """Tag names of a DAG (read once per client: a client lives for one doctor task)."""
        if dag_id not in self._tags:
            dag = self._call(Dag, "GET", f"/api/v2/dags/{_seg(dag_id)}")
            self._tags[dag_id] = [t.name for t in dag.tags]
        return list(self._tags[dag_id])

    def get_dag_details(self, dag_id: str) -> dict:
        """A DAG's details as a dict (owners, tags, default_args, ...), read once per client."""
        if dag_id not in self._details:
            self._details[dag_id] = self._call(Dag, "GET", f"/api/v2/dags/{_seg(dag_id)}/details").plain()
        return dict(self._details[dag_id])

    def set_dag_paused(self, dag_id: str, paused: bool) -> dict:
        """Pause or unpause a DAG (`PATCH /api/v2/dags/{dag_id}?update_mask=is_paused`); the DAG after.

        Raises:
            AirflowAPIError: the API refused or could not be reached.
        """
        body = DagPatchBody(is_paused=paused).model_dump()
        path = f"/api/v2/dags/{_seg(dag_id)}"
        return self._call(Dag, "PATCH", path, json=body, params={"update_mask": ["is_paused"]}).plain()

    def trigger_dag_run(self, dag_id: str, conf: dict | None = None, note: str | None = None) -> dict:
        """Trigger a run of a DAG now (logical_date null); the new DAG run as a dict (dag_run_id, ...).

        Args:
            conf: the run's conf (the DAG's Params), {} by default.
            note: the run's note (at most 1000 characters), or None for none.
        Raises:
            AirflowAPIError: the API refused (e.g. 404 for an unknown DAG, 403 for a caller who may
                not trigger it) or could not be reached.
        """
        body = TriggerDagRunBody(conf=conf or {}, note=note).model_dump(mode="json")
        if note is None:
            del body["note"]  # only the note is left out when empty: logical_date must stay, as null
        return self._call(DagRun, "POST", f"/api/v2/dags/{_seg(dag_id)}/dagRuns", json=body).plain()

    def get_dag_run(self, dag_id: str, run_id: str) -> dict:
        """A DAG run as a dict (state, start_date, end_date, conf, note, ...)."""
        return self._call(DagRun, "GET", f"/api/v2/dags/{_seg(dag_id)}/dagRuns/{_seg(run_id)}").plain()

    def list_dag_runs(self, dag_id: str = "~", limit: int = 100) -> dict:
        """DAG runs of a DAG: {"dag_runs": [dict, ...], "total_entries": int (all runs, not just listed)}."""
        resp = self._call(
            DagRunCollection, "GET", f"/api/v2/dags/{_seg(dag_id)}/dagRuns", params={"limit": limit}
        )
        return resp.plain()

    # -- pools, Variables, plugins, XComs, approvals -----------------------------------------

    def ensure_pool(self, name: str, slots: int, description: str) -> bool:
        """Create the pool `name` with `slots` slots if it does not exist; an existing pool is left as is.

        Returns:
            True if the pool was created now (False also when another process created it first).
        Raises:
            AirflowAPIError: the API refused.
        """
        try:
            self._call(Pool, "GET", f"/api/v2/pools/{_seg(name)}")
            return False
        except AirflowAPIError as exc:
            if exc.status != 404:
                raise
        body = PoolBody(name=name, slots=slots, description=description).model_dump()
        try:
            self._call(Pool, "POST", "/api/v2/pools", json=body)
        except AirflowAPIError as exc:
            if exc.status == 409:  # created by a concurrent task since the GET
                return False
            raise
        return True

    def set_variable(self, key: str, value: str, description: str | None = None) -> None:
        """Create or overwrite the Variable `key` (value as text).

        Raises:
            AirflowAPIError: the API refused or could not be reached.
        """
        body = VariableBody(key=key, value=value, description=description).model_dump(exclude_none=True)
        try:
            self._call(Variable, "POST", "/api/v2/variables", json=body)
        except AirflowAPIError as exc:
            if exc.status != 409:
                raise
            self._call(Variable, "PATCH", f"/api/v2/variables/{_seg(key)}", json=body)

    def delete_variable(self, key: str) -> bool:
        """Delete the Variable `key`; False when it did not exist.

        Raises:
            AirflowAPIError: the API refused (other than 404) or could not be reached.
        """
        try:
            self._request("DELETE", f"/api/v2/variables/{_seg(key)}")
        except AirflowAPIError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def list_plugins(self) -> list[str]:
        """Names of the plugins the API server loaded."""
        return [p.name for p in self._call(PluginCollection, "GET", "/api/v2/plugins").plugins]

    def get_xcom_entry(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        key: str = "return_value",
        map_index: int = -1,
        deserialize: bool = False,
    ) -> dict:
        """One XCom entry as a dict; its value is under "value" (with deserialize=False the API
        gives the stored value's string form).

        Raises:
            AirflowAPIError: HTTP 404 when there is no such entry, or unreachable.
        """
        path = f"{_ti_path(dag_id, run_id, task_id)}/xcomEntries/{_seg(key)}"
        params = {"map_index": map_index, "deserialize": "true" if deserialize else None}
        return self._call(XComEntry, "GET", path, params=params).model_dump(mode="json")

    def list_hitl_details(
        self, dag_id: str = "~", run_id: str = "~", response_received: bool | None = None
    ) -> list[dict]:
        """Human-in-the-loop details (approval requests) as dicts with subject, body, options,
        chosen_options, response_received and the task_instance dict.

        Raises:
            AirflowAPIError: the API refused or could not be reached.
        """
        params = {"response_received": None if response_received is None else str(response_received).lower()}
        path = f"/api/v2/dags/{_seg(dag_id)}/dagRuns/{_seg(run_id)}/hitlDetails"
        return [d.plain() for d in self._call(HITLDetailCollection, "GET", path, params=params).hitl_details]

    def update_hitl_detail(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int,
        chosen_options: list[str],
        params_input: dict | None = None,
    ) -> dict:
        """Answer a human-in-the-loop request as a person would in the UI; the API's answer as a dict.

        Raises:
            AirflowAPIError: the API refused (e.g. 409 when already answered) or could not be reached.
        """
        body = HITLResponseBody(chosen_options=chosen_options, params_input=params_input or {}).model_dump()
        path = f"{_ti_path(dag_id, run_id, task_id)}/{int(map_index)}/hitlDetails"
        return self._json(self._request("PATCH", path, json=body)) or {}

    def ui_url(self, path: str) -> str:
        """An absolute link into the Airflow UI."""
        return f"{self.base_url}/{path.lstrip('/')}"


# -- the hook -------------------------------------------------------------------------------------


class AirflowApiHook(BaseHook):
    """Airflow's REST API v2 as a hook: builds the doctor's `AirflowAPI` from a connection.

    The connection (type `airflow_api`; a plain `http` connection works too) holds everything:
    host = the API server's URL (e.g. http://airflow-api-server:8080), or a host name with port
    and schema (`http` or `https`); login and password = the account whose `POST /auth/token`
    the doctor uses. No credential is ever an argument.

    Args:
        airflow_api_conn_id: the connection to read (default `doctor_airflow_api`).
        timeout: seconds per HTTP request (connect, read and write each; logs get 3x).
        retries: extra attempts after a connection error, or after a 502/503/504 or read timeout of
            an idempotent request (module docstring); 0 disables retries.
    """

    conn_name_attr = "airflow_api_conn_id"
    default_conn_name = API_CONN_ID
    conn_type = "airflow_api"
    hook_name = "Airflow REST API"

    def __init__(
        self, airflow_api_conn_id: str = default_conn_name, timeout: float = 10.0, retries: int = 2
    ) -> None:
        super().__init__()
        self.airflow_api_conn_id = airflow_api_conn_id
        self.timeout = timeout
        self.retries = retries

    @cached_property
    def client(self) -> AirflowAPI:
        """The REST client, built on first use (the connection is read then) and kept for the hook's
        life: one token and one HTTP connection pool for every call through this hook.

        Raises:
            airflow.exceptions.AirflowNotFoundException: the connection does not exist.
        """
        return self.get_conn()

    def get_conn(self) -> AirflowAPI:
        """A new REST client from the connection (its token is fetched on the first request).

        Raises:
            airflow.exceptions.AirflowNotFoundException: the connection does not exist.
        """
        conn = self.get_connection(self.airflow_api_conn_id)
        return AirflowAPI(
            connection_base_url(conn), conn.login, conn.password, timeout=self.timeout, retries=self.retries
        )

    def test_connection(self) -> tuple[bool, str]:
        """The connection form's Test button: whether the account gets a token from the API server.

        Returns:
            (True, where the token came from) or (False, why not).
        """
        try:
            self.client.fetch_token()
        except Exception as exc:  # noqa: BLE001 - the form shows the reason
            return False, str(exc)
        return True, f"Token received from {self.client.base_url}/auth/token"

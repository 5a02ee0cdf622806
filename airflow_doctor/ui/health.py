"""What the Doctor dashboard says about the doctor's integrations: reachable now, or degraded.

Probes, from the API server, each integration the doctor depends on, by the Airflow connection that
configures it (docs/configuration.md): a TCP connect to the host and port of
`doctor_llm`, `doctor_smtp` and `doctor_slack`, and Airflow's own `/api/v2/monitor/health` (read
with the doctor's REST client, airflow_doctor/hooks/airflow_api.py) for the scheduler, triggerer
and dag-processor. A missing connection is reported as "not configured" (the
doctor degrades: offline diagnosis, email only). Results are cached for `CACHE_SECONDS`.
"""

from __future__ import annotations

import logging
import socket
import time
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

#: A probe waits this long for a TCP connect (seconds); five probes stay under a page load's budget.
CONNECT_TIMEOUT = 1.0
#: Probe results are reused this long (seconds), so a dashboard refresh does not probe again.
CACHE_SECONDS = 60.0
#: Airflow connection -> (label, default port when the connection names none).
CONNECTIONS = {
    "doctor_llm": ("LLM", 443),
    "doctor_smtp": ("SMTP", 25),
    "doctor_slack": ("Slack", 443),
}
_cache: dict = {"at": 0.0, "result": None}


#: Where a connection type sends its requests when the connection names no host (providers' defaults).
DEFAULT_HOSTS = {"anthropic": "api.anthropic.com", "slackwebhook": "hooks.slack.com", "slack": "slack.com"}


def _endpoint(conn) -> tuple[str | None, int | None]:
    """The host and port a connection's requests go to. Only reachability is reported, never a value
    read here: a Slack webhook connection keeps its URL (with its token) in the password."""
    candidates = [conn.host or ""]
    extra = conn.extra_dejson or {}
    candidates += [str(extra.get(k) or "") for k in ("base_url", "webhook_url", "url")]
    if conn.conn_type == "slackwebhook":
        candidates.append(conn.password or "")
    for value in candidates:
        if "://" in value:
            parts = urlsplit(value)
            if parts.hostname:
                return parts.hostname, conn.port or parts.port or (443 if parts.scheme == "https" else 80)
        elif value:
            return value, conn.port
    return DEFAULT_HOSTS.get(conn.conn_type or ""), conn.port


def _tcp(host: str, port: int) -> str:
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            return "reachable"
    except OSError as exc:
        return f"unreachable ({type(exc).__name__})"


def probe(api_url: str | None = None) -> dict[str, str]:
    """Reachability of the doctor's integrations now.

    Args:
        api_url: the API server's base URL for `/api/v2/monitor/health` (None: `[api] base_url`).
    Returns:
        {label: "reachable" | "unreachable (...)" | "not configured" | component states}, e.g.
        {"LLM": "not configured", "SMTP": "reachable", "Slack": "reachable", "Airflow": "scheduler
        healthy, triggerer healthy, dag_processor healthy"}.
    """
    now = time.monotonic()
    if _cache["result"] is not None and now - _cache["at"] < CACHE_SECONDS:
        return dict(_cache["result"])
    from airflow.sdk import BaseHook

    out: dict[str, str] = {}
    for conn_id, (label, default_port) in CONNECTIONS.items():
        try:
            conn = BaseHook.get_connection(conn_id)
        except Exception:  # noqa: BLE001 - AirflowNotFoundException and backends' own errors
            out[label] = "not configured"
            continue
        host, port = _endpoint(conn)
        out[label] = _tcp(host, int(port or default_port)) if host else "configured (no host to probe)"
    out["Airflow"] = _airflow_health(api_url)
    _cache.update(at=now, result=dict(out))
    return out


def _airflow_health(api_url: str | None) -> str:
    """Airflow's components as `/api/v2/monitor/health` reports them, through the doctor's one REST
    client (no token: the endpoint is open; no retry: a page load must not wait for one).

    Returns:
        e.g. "metadatabase healthy, scheduler healthy, triggerer healthy, dag_processor healthy",
        "unreachable (ConnectError)", "unreachable (HTTP 503)" or "unknown (...)".
    """
    from airflow.configuration import conf

    from airflow_doctor.hooks.airflow_api import AirflowAPI, AirflowAPIError

    base = (api_url or conf.get("api", "base_url", fallback="") or "").rstrip("/")
    if not base:
        return "unknown ([api] base_url not set)"
    try:
        data = AirflowAPI(base, timeout=CONNECT_TIMEOUT * 3, retries=0).get_health()
    except AirflowAPIError as exc:
        why = f"HTTP {exc.status}" if exc.status else type(exc.__cause__ or exc).__name__
        return f"unreachable ({why})"
    parts = []
    for name in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
        status = (data.get(name) or {}).get("status")
        if status:
            parts.append(f"{name} {status}")
    return ", ".join(parts) or "unknown"

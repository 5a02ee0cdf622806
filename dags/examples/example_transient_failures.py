"""
### example_transient_* and baseline_transient_*

Five small demo DAGs from one factory, each with one task that fails on its first try with a
different, real **transient** error and succeeds on the next try:

- `example_transient_warehouse_restarting.load_orders`: the warehouse is restarting and answers the
  connection's startup message with `FATAL: the database system is starting up` (SQLSTATE 57P03,
  `psycopg2.OperationalError`), spoken by a loopback server on the Postgres wire protocol.
- `example_transient_api_503.fetch_exports`: an HTTP API on loopback sheds load with
  `503 Service Unavailable` (`requests.exceptions.HTTPError`).
- `example_transient_api_timeout.fetch_rates`: an HTTP API on loopback accepts the connection but
  does not answer within the client's 2 s (`requests.exceptions.ReadTimeout`).
- `example_transient_serialization.update_inventory`: a concurrent writer updates the same warehouse
  row under REPEATABLE READ (`psycopg2.errors.SerializationFailure`).
- `example_transient_dns.sync_crm`: the resolver answers `EAI_AGAIN` (`Temporary failure in name
  resolution`), modelled by a patched `getaddrinfo`.

They have `retries=0`: the doctor, not Airflow's fixed retry, decides whether to retry. Param
`outage_tries` (default 1) makes the outage last that many tries.

Each has a twin `baseline_transient_<kind>` with the same task and `retries=1` at Airflow's default
`retry_delay` (`[core] default_task_retry_delay`, 300 s), tagged `doctor:off` so the doctor leaves it
alone: what healing looks like without the doctor (bench/mttr.py compares the two).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, get_current_context, task

_DOC = __doc__


def _warehouse():
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id="demo_warehouse")


def _serve(status: int, body: bytes, *, silent: bool = False) -> tuple[str, object]:
    """Start an HTTP server on loopback answering every GET with `status` and `body`, or accepting
    connections and never answering (`silent`); return (base URL, server or socket to close)."""
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    if silent:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
        return f"http://127.0.0.1:{sock.getsockname()[1]}", sock

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def _close(handle) -> None:
    from http.server import HTTPServer

    if isinstance(handle, HTTPServer):
        handle.shutdown()
        handle.server_close()
    else:
        handle.close()


def _get_json(outage: bool, path: str, *, status: int = 503, silent: bool = False) -> dict:
    """GET `path` from a loopback API that is down (`status`, or `silent`) during an outage."""
    import requests

    if outage:
        url, handle = _serve(status, b'{"error": "service unavailable"}', silent=silent)
    else:
        url, handle = _serve(200, b'{"rows": 3}')
    try:
        resp = requests.get(f"{url}{path}", timeout=2)
        resp.raise_for_status()
        return resp.json()
    finally:
        _close(handle)


def _starting_up_server():
    """A loopback server that speaks the start of PostgreSQL's wire protocol (protocol 3.0, "Message
    Flow: Start-up") as a server in recovery does: it declines SSL and GSS encryption ('N') and answers
    the StartupMessage with ErrorResponse FATAL 57P03 "the database system is starting up". Returns
    the listening socket (close it to stop)."""
    import socket
    import threading

    ssl_or_gss_request = {80877103, 80877104}
    fields = b"SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0"
    error = b"E" + (len(fields) + 4).to_bytes(4, "big") + fields

    def read(conn, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError("client went away")
            data += chunk
        return data

    def answer(conn) -> None:
        with conn:
            try:
                while True:
                    length = int.from_bytes(read(conn, 4), "big")
                    body = read(conn, length - 4)
                    if length == 8 and int.from_bytes(body, "big") in ssl_or_gss_request:
                        conn.sendall(b"N")
                        continue
                    conn.sendall(error)
                    return
            except (OSError, ConnectionError):
                return

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            answer(conn)

    threading.Thread(target=serve, daemon=True).start()
    return sock


def warehouse_restarting(outage: bool) -> int:
    """The warehouse is mid-restart: it accepts the connection and answers "starting up"."""
    hook = _warehouse()
    if outage:
        import psycopg2

        conn = hook.get_connection("demo_warehouse")
        server = _starting_up_server()
        try:
            port = server.getsockname()[1]
            psycopg2.connect(
                host="127.0.0.1", port=port, user=conn.login, dbname=conn.schema, connect_timeout=5
            )
        finally:
            server.close()
    return int(hook.get_records("SELECT count(*) FROM pg_catalog.pg_tables")[0][0])


def api_503(outage: bool) -> int:
    """The exports API is overloaded and sheds load with 503 Service Unavailable."""
    return int(_get_json(outage, "/v1/exports/daily")["rows"])


def api_timeout(outage: bool) -> int:
    """The FX-rates API accepts the connection but is too slow to answer within the client's 2 s."""
    return int(_get_json(outage, "/v1/rates/latest", silent=True)["rows"])


def serialization(outage: bool) -> int:
    """Two writers update one inventory row under REPEATABLE READ: the later one must start over."""
    import psycopg2

    c = _warehouse().get_connection("demo_warehouse")
    dsn = {"host": c.host, "port": c.port, "user": c.login, "dbname": c.schema, "connect_timeout": 5}
    other = psycopg2.connect(**dsn)
    other.autocommit = True
    ours = psycopg2.connect(**dsn)
    ours.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ)
    try:
        with other.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS demo_inventory (sku text PRIMARY KEY, qty integer NOT NULL);"
                "INSERT INTO demo_inventory VALUES ('sku-1', 100) ON CONFLICT (sku) DO NOTHING;"
            )
        with ours.cursor() as cur:
            cur.execute("SELECT qty FROM demo_inventory WHERE sku = 'sku-1'")  # our snapshot starts here
            if outage:
                # A concurrent order-intake job updates the row and commits after our snapshot.
                with other.cursor() as theirs:
                    theirs.execute("UPDATE demo_inventory SET qty = qty - 1 WHERE sku = 'sku-1'")
            cur.execute("UPDATE demo_inventory SET qty = qty + 10 WHERE sku = 'sku-1' RETURNING qty")
            qty = cur.fetchone()[0]
        ours.commit()
        return int(qty)
    finally:
        ours.close()
        other.close()


def dns_hiccup(outage: bool) -> int:
    """The worker's resolver cannot answer for a moment (EAI_AGAIN) when the task resolves the CRM host."""
    import socket
    from unittest import mock

    if not outage:
        return int(_get_json(False, "/api/contacts/changes")["rows"])
    import requests

    eai_again = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    with mock.patch("socket.getaddrinfo", side_effect=eai_again):
        requests.get("http://crm.internal.example/api/contacts/changes", timeout=2).raise_for_status()
    return 0


# kind: (failing task's id, its work: fn(outage) -> result)
TRANSIENT_KINDS = {
    "warehouse_restarting": ("load_orders", warehouse_restarting),
    "api_503": ("fetch_exports", api_503),
    "api_timeout": ("fetch_rates", api_timeout),
    "serialization": ("update_inventory", serialization),
    "dns": ("sync_crm", dns_hiccup),
}


def transient_dag(kind: str, *, baseline: bool = False):
    """The DAG `example_transient_<kind>` (retries=0, healed by the doctor) or, with `baseline`, its
    twin `baseline_transient_<kind>` (retries=1 at the default retry_delay, tagged doctor:off)."""
    task_id, work = TRANSIENT_KINDS[kind]

    @dag(
        dag_id=f"{'baseline' if baseline else 'example'}_transient_{kind}",
        schedule=None,
        start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
        catchup=False,
        doc_md=_DOC,
        # No retry_delay on the baseline: Airflow's default ([core] default_task_retry_delay) applies.
        default_args={"owner": "data-eng", "retries": 1 if baseline else 0},
        tags=["example", "baseline", "doctor:off"] if baseline else ["example", "doctor-demo"],
        params={"outage_tries": 1},
    )
    def transient():
        @task(task_id=task_id)
        def run() -> int:
            ctx = get_current_context()
            return work(ctx["ti"].try_number <= int(ctx["params"]["outage_tries"]))

        run()

    return transient()


for _kind in TRANSIENT_KINDS:
    for _baseline in (False, True):
        _dag = transient_dag(_kind, baseline=_baseline)
        globals()[_dag.dag_id] = _dag

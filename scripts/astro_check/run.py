"""`make astro-check`: the Astro CLI route run for real in Docker on this machine, short of Astro's image.

What `astro dev start` does, step by step, with stand-ins only where this machine cannot reach the
real thing (no image registry):

1. Docker engine (docker.io, docker-compose, debootstrap from apt; `dockerd` started if not running).
2. A Debian bookworm base image from `debootstrap --variant=minbase` + `docker import`.
3. A local package index on the Docker bridge for the wheels that exist only on this machine's disk
   (torch CPU, in pip's configured find-links).
4. Stand-ins built under the names the project refers to: the Astro Runtime "-base" image of the
   Dockerfile's FROM line (Debian, Python 3.11, Airflow 3.3.2), Postgres for the CLI's metadata
   database and the override's pgvector image, and the mail catcher.
5. The project's own Dockerfile, unchanged, built as the CLI names it (`<project>/airflow:latest`);
   only the build argument TORCH_INDEX_URL points at the local index. Its first stage builds the
   airflow-doctor wheel, the second installs it: the image must import `airflow_doctor` and its data
   files from site-packages even with its working directory first on sys.path (as `python -m` puts
   it), and `airflow plugins` in it must list the doctor's plugins, found through the wheel's entry
   points.
6. The CLI's Airflow 3 compose file rendered for this project (astro-cli
   `airflow/include/airflow3/composeyml.go.tmpl`, `airflow/container.go` generateConfig: service
   names, the `airflow` network, env file, ports, volumes, environment) and the project's
   `docker-compose.override.yml` merged onto it the way the CLI does (a second compose file). The
   CLI's mounts (dags/, plugins/, include/, tests/) carry no code of the doctor: the two one-line DAG
   files call into the wheel installed in the image.
7. `docker-compose up`, the CLI's health check (`/api/v2/monitor/health`), then airflow_settings.yaml
   applied as the CLI does (`/auth/token`, then POST and PATCH-on-409 per pool, Variable,
   connection: astro-cli `settings/settings.go`).
8. Nothing unpaused by hand: the flaky demo DAG and the permanent-failure demo DAG are triggered;
   the check passes only when the doctor, inside the containers, healed the flaky one (its
   embed_failure task embedding through the override's warm `doctor-embed` service) and the
   permanent failure's email reached the mail catcher.

Every step prints its duration. State (rendered compose file, index, logs) goes to
`.local/astro-check/`; the compose project is torn down at the end unless ASTRO_CHECK_KEEP=1.

Usage: python3 scripts/astro_check/run.py
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
STATE = PROJECT_ROOT / ".local" / "astro-check"
DEBIAN_IMAGE = "astro-check/debian:bookworm"
PROJECT_NAME = "airflow-doctor"  # .astro/config.yaml project.name
AIRFLOW_IMAGE = f"{PROJECT_NAME}/airflow:latest"  # astro-cli airflow.ImageName(projectName, "latest")
COMPOSE_PROJECT = "airflow-doctor-astro-check"
METADATA_DB_IMAGE = "docker.io/postgres:12.6"  # astro-cli config: postgres.repository / postgres.tag
BRIDGE_HOST = "172.17.0.1"
FLAKY_DAG, FLAKY_TASK = "example_flaky_warehouse", "load_orders"
PERMANENT_DAG, PERMANENT_TASK = "example_orders_report", "build_report"

T0 = time.monotonic()
STEP = {"n": 0, "name": ""}


def say(msg: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", flush=True)


@contextlib.contextmanager
def step(name: str):
    """Print a step's start, its duration and whether it passed."""
    STEP["n"] += 1
    STEP["name"] = name
    say(f"step {STEP['n']}: {name} ...")
    start = time.monotonic()
    try:
        yield
    except Exception:
        say(f"step {STEP['n']}: {name} FAILED after {time.monotonic() - start:.1f}s")
        raise
    say(f"step {STEP['n']}: {name} ok ({time.monotonic() - start:.1f}s)")


def run(argv: list[str], *, log: str | None = None, env: dict | None = None, check: bool = True, **kw):
    """Run a command; with `log`, its output goes to STATE/<log> and the tail is shown on failure."""
    if log is None:
        return subprocess.run(argv, check=check, env=env, **kw)
    path = STATE / log
    with open(path, "wb") as out:
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, **kw)
    if check and proc.returncode != 0:
        tail = path.read_text(errors="replace").splitlines()[-40:]
        print("\n".join(f"    | {line}" for line in tail))
        raise RuntimeError(f"{' '.join(argv[:3])} ... exited {proc.returncode} (full log: {path})")
    return proc


def free_port(preferred: int) -> int:
    for port in [preferred, *range(preferred + 100, preferred + 200)]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port near {preferred}")


# --- Docker -------------------------------------------------------------------------------------


def ensure_docker() -> None:
    missing = [
        p
        for p, exe in (
            ("docker.io", "dockerd"),
            ("docker-compose", "docker-compose"),
            ("debootstrap", "debootstrap"),
        )
        if shutil.which(exe) is None
    ]
    if missing:
        run(["apt-get", "install", "-y", *missing], log="apt.log")
    if run(["docker", "info"], check=False, capture_output=True).returncode == 0:
        say("dockerd already running")
        return
    log = open(STATE / "dockerd.log", "ab")  # noqa: SIM115 - handed to the daemon
    proc = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (STATE / "dockerd.pid").write_text(str(proc.pid))
    for _ in range(60):
        if run(["docker", "info"], check=False, capture_output=True).returncode == 0:
            say(f"dockerd started (pid {proc.pid}, log {STATE / 'dockerd.log'})")
            return
        time.sleep(1)
    raise RuntimeError("dockerd did not come up in 60 s")


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (deb822 `URIs:` or a one-line `deb` entry)."""
    for src in sorted(Path("/etc/apt/sources.list.d").glob("*")) + [Path("/etc/apt/sources.list")]:
        if not src.is_file():
            continue
        for line in src.read_text().splitlines():
            parts = line.split()
            if parts[:1] == ["URIs:"] and "security" not in parts[1]:
                return parts[1]
            if parts[:1] == ["deb"] and "security" not in line:
                return next(p for p in parts[1:] if p.startswith("http"))
    return "http://deb.debian.org/debian"


def ensure_base_image() -> None:
    if run(["docker", "image", "inspect", DEBIAN_IMAGE], check=False, capture_output=True).returncode == 0:
        say(f"{DEBIAN_IMAGE} exists")
        return
    rootfs = STATE / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    mirror = debian_mirror()
    run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), mirror], log="debootstrap.log")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    run(["docker", "import", "-", DEBIAN_IMAGE], stdin=tar.stdout, log="import.log")
    tar.wait()
    shutil.rmtree(rootfs, ignore_errors=True)


# --- Local index and build context ----------------------------------------------------------------


def pip_config() -> dict[str, str]:
    out = run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False)
    config = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition("=")
        config[key.split(".", 1)[-1]] = value.strip().strip("'")
    return config


def serve_local_index() -> tuple[str, subprocess.Popen]:
    """A PEP 503 index of the wheels in pip's find-links, served on the Docker bridge."""
    find_links = [Path(p) for p in pip_config().get("find-links", "").split() if Path(p).is_dir()]
    root = STATE / "index"
    shutil.rmtree(root, ignore_errors=True)
    projects: dict[str, list[Path]] = {}
    for folder in find_links:
        for wheel in folder.glob("*.whl"):
            projects.setdefault(wheel.name.split("-")[0].lower().replace("_", "-"), []).append(wheel)
    for project, wheels in projects.items():
        (root / "simple" / project).mkdir(parents=True)
        links = []
        for wheel in wheels:
            (root / "simple" / project / wheel.name).symlink_to(wheel)
            links.append(f'<a href="{wheel.name}">{wheel.name}</a><br>')
        (root / "simple" / project / "index.html").write_text(
            "<html><body>" + "".join(links) + "</body></html>"
        )
    port = free_port(18765)
    log = open(STATE / "index.log", "ab")  # noqa: SIM115 - handed to the server
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", BRIDGE_HOST, "--directory", str(root)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://{BRIDGE_HOST}:{port}/simple"
    for _ in range(30):
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url + "/", timeout=2)  # noqa: S310 - our own loopback server
            break
        time.sleep(0.2)
    sources = ", ".join(map(str, find_links))
    say(f"local index {url}: {', '.join(sorted(projects)) or 'no wheels'} (from {sources})")
    return url, server


def image_context() -> Path:
    """Build context of the stand-ins: their files, the host's CA bundle and the tested versions."""
    ctx = STATE / "images"
    shutil.rmtree(ctx, ignore_errors=True)
    shutil.copytree(HERE / "images", ctx)
    shutil.copy(pip_config().get("cert", "/etc/ssl/certs/ca-certificates.crt"), ctx / "host-ca.crt")
    venv_python = PROJECT_ROOT / ".venv" / "bin" / "python"
    if venv_python.exists():
        # `pip list --format=freeze` gives name==version even for wheels installed from a file.
        listing = [str(venv_python), "-m", "pip", "list", "--format=freeze"]
        pins = run(listing, capture_output=True, text=True).stdout
    else:
        say("no .venv (run `make install` to pin the stand-in to the tested versions): resolving freely")
        pins = ""
    (ctx / "constraints.txt").write_text(pins)
    return ctx


def runtime_image() -> str:
    """The image of the project Dockerfile's FROM line."""
    for line in (PROJECT_ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            return line.split()[1]
    raise RuntimeError("no FROM line in Dockerfile")


def build_standins(ctx: Path, override: dict) -> None:
    runtime = runtime_image()
    run(
        [
            "docker",
            "build",
            "-t",
            runtime,
            "--build-arg",
            f"LOCAL_INDEX_HOST={BRIDGE_HOST}",
            "-f",
            str(ctx / "runtime.Dockerfile"),
            str(ctx),
        ],
        log="build-runtime.log",
    )
    say(f"stand-in {runtime}")
    postgres_tags = [METADATA_DB_IMAGE, override["services"]["doctor-kb"]["image"]]
    run(
        [
            "docker",
            "build",
            *sum((["-t", t] for t in postgres_tags), []),
            "-f",
            str(ctx / "postgres.Dockerfile"),
            str(ctx),
        ],
        log="build-postgres.log",
    )
    say(f"stand-in {', '.join(postgres_tags)}")
    mailpit = override["services"]["mailpit"]["image"]
    run(
        ["docker", "build", "-t", mailpit, "-f", str(ctx / "mailpit.Dockerfile"), str(ctx)],
        log="build-mailpit.log",
    )
    say(f"stand-in {mailpit}")


DOCTOR_PROBE = """
import json, os, sysconfig
import airflow_doctor
from airflow_doctor import resources
print(json.dumps({"file": airflow_doctor.__file__, "site": sysconfig.get_paths()["purelib"],
                  "prompts": str(resources.data_dir("prompts")), "cwd": os.getcwd()}))
"""


def installed_doctor() -> str:
    """Where the project image imports the doctor from, and which of its plugins Airflow finds.

    `python -c` runs from the image's working directory with it first on sys.path, as `python -m`
    (the doctor-embed service) does: a source copy of the package there would win over the wheel.

    Returns:
        A line saying where the package and its data come from and which plugins are listed.
    Raises:
        RuntimeError: `airflow_doctor` or its data files do not come from site-packages, or
            `airflow plugins` does not list doctor_listener and doctor_ui.
    """
    docker_run = ["docker", "run", "--rm", AIRFLOW_IMAGE]
    out = run([*docker_run, "python", "-c", DOCTOR_PROBE], capture_output=True, text=True).stdout
    info = json.loads(out.strip().splitlines()[-1])
    outside = [key for key in ("file", "prompts") if not info[key].startswith(info["site"] + "/")]
    if outside:
        raise RuntimeError(f"the image's doctor is not the installed wheel (run from {info['cwd']}): {info}")
    out = run([*docker_run, "airflow", "plugins", "-o", "json"], capture_output=True, text=True).stdout
    listed = json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("[")))
    ours = sorted(p["name"] for p in listed if p["name"] in ("doctor_listener", "doctor_ui"))
    if ours != ["doctor_listener", "doctor_ui"]:
        raise RuntimeError(f"`airflow plugins` in the image lists {[p['name'] for p in listed]}")
    return (
        f"airflow_doctor and its data from {info['site']} (working directory {info['cwd']}); "
        f"`airflow plugins` lists {', '.join(ours)}"
    )


# --- The CLI's compose project --------------------------------------------------------------------


def render_cli_compose(api_port: int, pg_port: int) -> dict:
    """The CLI's Airflow 3 compose project for this project, as generateConfig renders it.

    Mirrors astro-cli `airflow/include/airflow3/composeyml.go.tmpl` with the CLI's defaults
    (postgres user/password/host `postgres`, image `<project>/airflow:latest`, mount label `z`,
    DuplicateImageVolumes on, `env_file: .env` only when `.env` exists).
    """
    home = str(PROJECT_ROOT)
    env = {
        "AIRFLOW__API__BASE_URL": "http://localhost:8080",
        "AIRFLOW__API__PORT": "8080",
        "AIRFLOW__API_AUTH__JWT_SECRET": PROJECT_NAME,
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://api-server:8080/execution/",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__FERNET_KEY": "d6Vefz3G9U_ynXB3cr7y_Ak35tAHkEGAVxuz_B-jzWw=",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SQL_ALCHEMY_CONN": "postgresql://postgres:postgres@postgres:5432",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://postgres:postgres@postgres:5432",
        # A YAML boolean in the template; compose-go takes it, docker-compose 1.x wants a string.
        "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
        "AIRFLOW__API__SECRET_KEY": PROJECT_NAME,
        "ASTRONOMER_ENVIRONMENT": "local",
    }
    labels = {"io.astronomer.docker": "true", "io.astronomer.docker.cli": "true"}
    mounts = [f"{home}/{d}:/usr/local/airflow/{d}:z" for d in ("dags", "plugins", "include", "tests")]
    # Only the scheduler mounts the settings file (SettingsFileExist in the template).
    scheduler_mounts = list(mounts)
    if (PROJECT_ROOT / "airflow_settings.yaml").exists():
        scheduler_mounts.append(f"{home}/airflow_settings.yaml:/usr/local/airflow/airflow_settings.yaml:z")
    env_file = {"env_file": ".env"} if (PROJECT_ROOT / ".env").exists() else {}

    def airflow(component: str, command: str, *, mounts: list[str], ports: list[str] | None = None) -> dict:
        service = {
            "depends_on": ["db-migration"],
            "image": AIRFLOW_IMAGE,
            "command": ["airflow", command],
            "restart": "unless-stopped",
            "networks": ["airflow"],
            "user": "astro",
            "labels": {**labels, "io.astronomer.docker.component": f"airflow-{component}"},
            "environment": dict(env),
            "volumes": [*mounts, "airflow_logs:/usr/local/airflow/logs"],
            **env_file,
        }
        if ports:
            service["ports"] = ports
        return service

    triggerer_mounts = [m for m in mounts if "/tests:" not in m]
    return {
        "networks": {"airflow": {"driver": "bridge"}},
        "volumes": {"postgres_data": {"driver": "local"}, "airflow_logs": {"driver": "local"}},
        "services": {
            "postgres": {
                "image": METADATA_DB_IMAGE,
                "restart": "unless-stopped",
                "networks": ["airflow"],
                "labels": labels,
                "ports": [f"127.0.0.1:{pg_port}:5432"],
                "volumes": ["postgres_data:/var/lib/postgresql/data"],
                "environment": {"POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "postgres"},
            },
            "db-migration": {
                "depends_on": ["postgres"],
                "image": AIRFLOW_IMAGE,
                "command": ["airflow", "db", "migrate"],
                "networks": ["airflow"],
                "labels": {**labels, "io.astronomer.docker.component": "airflow-db-migration"},
                "environment": dict(env),
            },
            "scheduler": airflow("scheduler", "scheduler", mounts=scheduler_mounts),
            "dag-processor": airflow("dag-processor", "dag-processor", mounts=mounts),
            "api-server": airflow(
                "api-server", "api-server", mounts=mounts, ports=[f"127.0.0.1:{api_port}:8080"]
            ),
            "triggerer": airflow("triggerer", "triggerer", mounts=triggerer_mounts),
        },
    }


def compose(files: list[Path], *args: str, env: dict, log: str | None = None, check: bool = True):
    argv = ["docker-compose", "--project-name", COMPOSE_PROJECT, "--project-directory", str(PROJECT_ROOT)]
    for f in files:
        argv += ["-f", str(f)]
    return run([*argv, *args], env=env, log=log, check=check)


# --- Airflow's REST API, as the CLI and a user call it --------------------------------------------


class Api:
    def __init__(self, base: str) -> None:
        self.base = base
        self.token: str | None = None

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback URL we built
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else {}
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw)
            except ValueError:
                return exc.code, {"detail": raw.decode(errors="replace")}

    def login(self) -> None:
        # astro-cli airflow/docker.go fetchAirflowJWTToken: admin/admin, which all-admins accepts.
        status, body = self.request("POST", "/auth/token", {"username": "admin", "password": "admin"})  # noqa: S106
        if status not in (200, 201):
            raise RuntimeError(f"/auth/token answered {status}: {body}")
        self.token = body["access_token"]

    def upsert(self, resource: str, key: str, body: dict) -> None:
        """POST, then PATCH on 409, like astro-cli settings.airflowAPIUpsert."""
        status, answer = self.request("POST", f"/api/v2/{resource}", body)
        if status == 409:
            status, answer = self.request("PATCH", f"/api/v2/{resource}/{key}", body)
        if not 200 <= status < 300:
            raise RuntimeError(f"{resource} {key}: HTTP {status}: {answer}")


def wait_health(api: Api, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            status, body = api.request("GET", "/api/v2/monitor/health")
            if status == 200:
                return
            last = f"HTTP {status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(3)
    raise RuntimeError(f"API server not healthy after {timeout:.0f}s ({last})")


def apply_settings(api: Api) -> None:
    """airflow_settings.yaml through the REST API, field by field as astro-cli settings.go maps it."""
    settings = yaml.safe_load((PROJECT_ROOT / "airflow_settings.yaml").read_text())["airflow"]
    for pool in settings.get("pools") or []:
        if pool.get("pool_name"):
            api.upsert(
                "pools",
                pool["pool_name"],
                {
                    "name": pool["pool_name"],
                    "slots": pool.get("pool_slot", 1),
                    "description": pool.get("pool_description", ""),
                },
            )
    for var in settings.get("variables") or []:
        if var.get("variable_name") and var.get("variable_value"):
            api.upsert(
                "variables",
                var["variable_name"],
                {"key": var["variable_name"], "value": var["variable_value"]},
            )
            say(f"Added Variable: {var['variable_name']}")
    fields = {
        "conn_type": "conn_type",
        "conn_host": "host",
        "conn_login": "login",
        "conn_password": "password",
        "conn_schema": "schema",
        "conn_port": "port",
    }
    for conn in settings.get("connections") or []:
        body = {"connection_id": conn["conn_id"]}
        body.update({api_key: conn[key] for key, api_key in fields.items() if conn.get(key)})
        if conn.get("conn_extra"):
            body["extra"] = json.dumps(conn["conn_extra"])
        api.upsert("connections", conn["conn_id"], body)
        say(f"Added Connection: {conn['conn_id']}")


def wait_dags(api: Api, dag_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = set(dag_ids)
    while pending and time.monotonic() < deadline:
        for dag_id in sorted(pending):
            status, body = api.request("GET", f"/api/v2/dags/{dag_id}")
            if status == 200:
                say(f"{dag_id}: parsed, is_paused={body.get('is_paused')}")
                if body.get("is_paused"):
                    raise RuntimeError(
                        f"{dag_id} is paused: DAGS_ARE_PAUSED_AT_CREATION did not reach Airflow"
                    )
                pending.discard(dag_id)
        time.sleep(2)
    if pending:
        raise RuntimeError(f"not parsed after {timeout:.0f}s: {sorted(pending)}")


def trigger(api: Api, dag_id: str) -> str:
    status, body = api.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
    if status not in (200, 201):
        raise RuntimeError(f"trigger {dag_id}: HTTP {status}: {body}")
    say(f"triggered {dag_id}: {body['dag_run_id']}")
    return body["dag_run_id"]


def task_instance(api: Api, dag_id: str, run_id: str, task_id: str) -> dict:
    quoted = urllib.request.quote(run_id, safe="")
    status, body = api.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}")
    return body if status == 200 else {}


def wait_healed(api: Api, run_id: str, timeout: float) -> dict:
    """The flaky task failed once and succeeded on a later try that nobody but the doctor asked for."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        ti = task_instance(api, FLAKY_DAG, run_id, FLAKY_TASK)
        now = (ti.get("state"), ti.get("try_number"))
        if now != seen:
            say(f"{FLAKY_DAG}.{FLAKY_TASK}: state={now[0]} try_number={now[1]}")
            seen = now
        if ti.get("state") == "success" and (ti.get("try_number") or 0) >= 2:
            return ti
        time.sleep(2)
    raise RuntimeError(f"{FLAKY_DAG}.{FLAKY_TASK} not healed after {timeout:.0f}s (last {seen})")


def wait_mail(mail_url: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            with urllib.request.urlopen(mail_url, timeout=10) as resp:  # noqa: S310 - loopback URL we built
                messages = json.loads(resp.read())["messages"]
            for msg in messages:
                if f"{PERMANENT_DAG}.{PERMANENT_TASK}" in msg.get("Subject", ""):
                    return msg
        time.sleep(3)
    raise RuntimeError(f"no email about {PERMANENT_DAG}.{PERMANENT_TASK} after {timeout:.0f}s")


def doctor_runs(api: Api) -> list[str]:
    status, body = api.request("GET", "/api/v2/dags/doctor/dagRuns?limit=20")
    return [f"{r['dag_run_id']}={r['state']}" for r in body.get("dag_runs", [])] if status == 200 else []


def embedded_warm(api: Api) -> str:
    """The log line of a doctor run's embed_failure that says it embedded through `doctor-embed`.

    Raises RuntimeError when no embed_failure log says so (the tasks fell back to loading the model
    themselves: the override's embedding service is not reachable from the workers)."""
    status, body = api.request("GET", "/api/v2/dags/doctor/dagRuns?limit=20")
    seen = []
    for run in body.get("dag_runs", []) if status == 200 else []:
        quoted = urllib.request.quote(run["dag_run_id"], safe="")
        _, tis = api.request("GET", f"/api/v2/dags/doctor/dagRuns/{quoted}/taskInstances?limit=100")
        for ti in tis.get("task_instances", []):
            if not ti["task_id"].endswith("embed_failure") or not ti.get("try_number"):
                continue
            path = (
                f"/api/v2/dags/doctor/dagRuns/{quoted}/taskInstances/{ti['task_id']}/logs/"
                f"{ti['try_number']}?map_index={ti.get('map_index', -1)}&full_content=true"
            )
            _, log = api.request("GET", path)
            records = log.get("content", [])
            lines = [str(r.get("event", r)) if isinstance(r, dict) else str(r) for r in records]
            seen.extend(lines)
            warm = [line for line in lines if "embedding service" in line and "warm" in line]
            if warm:
                return warm[0]
    raise RuntimeError(f"no embed_failure log says it used the warm embedding service: {seen[-5:]}")


# --- Main -------------------------------------------------------------------------------------------


def main() -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    override_path = PROJECT_ROOT / "docker-compose.override.yml"
    override = yaml.safe_load(override_path.read_text())
    files: list[Path] = []
    env = dict(os.environ)
    server = None
    started = False
    result = 1
    try:
        with step("Docker engine (docker.io, docker-compose, dockerd)"):
            ensure_docker()
        with step(f"Debian base image {DEBIAN_IMAGE} (debootstrap + docker import)"):
            ensure_base_image()
        with step("local index on the Docker bridge for wheels only on this disk"):
            index_url, server = serve_local_index()
        with step("stand-ins for Astro Runtime, Postgres/pgvector and Mailpit"):
            build_standins(image_context(), override)
        with step(f"project Dockerfile, unchanged, as {AIRFLOW_IMAGE}"):
            run(
                [
                    "docker",
                    "build",
                    "-t",
                    AIRFLOW_IMAGE,
                    "--build-arg",
                    f"TORCH_INDEX_URL={index_url}",
                    str(PROJECT_ROOT),
                ],
                log="build-project.log",
            )
            versions = run(
                [
                    "docker",
                    "run",
                    "--rm",
                    AIRFLOW_IMAGE,
                    "python",
                    "-c",
                    "import airflow, sys, torch; print(airflow.__version__, sys.version.split()[0],"
                    " torch.__version__)",
                ],
                capture_output=True,
                text=True,
            ).stdout.split()
            say(f"image runs Airflow {versions[0]}, Python {versions[1]}, torch {versions[2]}")
            if not versions[2].endswith("+cpu"):
                raise RuntimeError(f"torch {versions[2]} is not the CPU build")
            say(installed_doctor())
        with step("render the CLI's Airflow 3 compose file and merge the project override"):
            api_port, pg_port = free_port(8080), free_port(5432)
            env.update(DOCTOR_KB_PORT=str(free_port(5433)), MAILPIT_UI_PORT=str(free_port(8025)))
            rendered = STATE / "compose.yaml"
            rendered.write_text(yaml.safe_dump(render_cli_compose(api_port, pg_port), sort_keys=False))
            files = [rendered, override_path]
            compose(files, "config", env=env, log="compose-merged.yaml")
            say(
                f"merged project: {STATE / 'compose-merged.yaml'}; API on 127.0.0.1:{api_port}, "
                f"Mailpit UI on 127.0.0.1:{env['MAILPIT_UI_PORT']}"
            )
        with step("docker-compose up"):
            compose(
                files, "down", "-v", "--remove-orphans", env=env, log="compose-down-before.log", check=False
            )
            started = True
            compose(files, "up", "-d", env=env, log="compose-up.log")
        api = Api(f"http://127.0.0.1:{api_port}")
        with step("CLI health check: /api/v2/monitor/health"):
            wait_health(api, timeout=600)
        with step("apply airflow_settings.yaml through the REST API, as the CLI does"):
            api.login()
            apply_settings(api)
        with step("DAGs parsed and not paused (nothing unpaused by hand)"):
            wait_dags(api, ["doctor", "doctor_sweeper", FLAKY_DAG, PERMANENT_DAG], timeout=300)
        with step(f"trigger {FLAKY_DAG} and {PERMANENT_DAG}"):
            flaky_run = trigger(api, FLAKY_DAG)
            trigger(api, PERMANENT_DAG)
        with step(f"the doctor heals {FLAKY_DAG}.{FLAKY_TASK} inside the containers"):
            ti = wait_healed(api, flaky_run, timeout=600)
            say(f"healed: try {ti['try_number']} {ti['state']}; doctor runs: {doctor_runs(api)}")
        with step("the doctor's tasks embedded through the warm doctor-embed service"):
            say(embedded_warm(api))
        with step(f"the email about {PERMANENT_DAG}.{PERMANENT_TASK} reaches the mail catcher"):
            msg = wait_mail(f"http://127.0.0.1:{env['MAILPIT_UI_PORT']}/api/v1/messages", timeout=300)
            say(f"mail to {[t['Address'] for t in msg['To']]}: {msg['Subject']}")
        result = 0
    except Exception as exc:  # noqa: BLE001 - the check reports where it stopped, whatever the error
        say(f"ASTRO CHECK FAILED at step {STEP['n']} ({STEP['name']}): {exc}")
        if started:
            compose(
                files, "logs", "--no-color", "--tail", "400", env=env, log="compose-logs.log", check=False
            )
            say(f"container logs: {STATE / 'compose-logs.log'}")
    finally:
        if started and os.environ.get("ASTRO_CHECK_KEEP") != "1":
            with step("docker-compose down -v"):
                compose(files, "down", "-v", "--remove-orphans", env=env, log="compose-down.log", check=False)
        if server is not None:
            server.terminate()
    verdict = "PASSED" if result == 0 else "FAILED"
    say(f"astro-check {verdict} in {time.monotonic() - T0:.0f}s")
    return result


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("make astro-check needs root (apt-get, dockerd, debootstrap)")
    sys.exit(main())

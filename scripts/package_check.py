"""`make package-check`: airflow-doctor built, installed and run the way a newcomer would do it.

1. Build the sdist, and the wheel from that sdist, with the standard frontend (`python -m build`,
   pinned in requirements-dev.txt) into `.local/package-check/dist/`.
2. Read both: the sdist carries what the wheel is built from; the wheel holds the package data
   (`airflow_doctor/data/prompts`, `data/sql`, `data/knowledge`: every file of `include/`), the UI's
   templates and static files, nothing but `airflow_doctor/`, and the entry points Airflow discovers
   (`apache_airflow_provider`, `airflow.plugins`).
3. A virtualenv that is not .venv, holding only `apache-airflow==3.3.2`, the CPU torch and the
   wheel, its dependencies resolved by pip. It is kept between runs under a key made of the wheel's
   requirements, so a re-run only reinstalls the wheel; CI (`CI` set) and `--fresh` build it anew.
4. In that virtualenv, with the repository on no path: `airflow_doctor` and its data files come from
   its site-packages, and `airflow plugins`, `airflow providers list` and `airflow config list`
   show the plugins, the provider and the `[doctor]` section with its defaults.
5. A fresh AIRFLOW_HOME whose DAG folder holds only copies of the two one-line DAG files and the
   demo DAGs, and the local stack of scripts/stack.py (embedded Postgres with pgvector, loopback
   mail and Slack sinks) with every Airflow and doctor process run by the fresh virtualenv's
   interpreter. The demo of scripts/demo.py then runs on it: the transient failure must be healed,
   the permanent one escalated.

The stack is stopped when the check ends, fails or is interrupted (SIGINT, SIGTERM). Prints a table
of every check and what it found; exit status 0 only when all passed. State and logs go to
`.local/package-check/`.

Usage: python -m scripts.package_check [--fresh] [--keep-running]
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import traceback
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from scripts import demo, stack

PROJECT_ROOT = stack.PROJECT_ROOT
STATE = PROJECT_ROOT / ".local" / "package-check"
# The Airflow a newcomer installs, and torch pinned exactly: pip takes the CPU wheel from this
# machine's find-links; a looser pin lets it pull a CUDA build of several GB.
AIRFLOW_PIN = "apache-airflow==3.3.2"
TORCH_PIN = "torch==2.13.0"
PACKAGE = "airflow_doctor"
# Folders of the wheel that must mirror a folder of the source tree file for file.
WHEEL_MIRRORS = {
    f"{PACKAGE}/data/prompts": PROJECT_ROOT / "include" / "prompts",
    f"{PACKAGE}/data/sql": PROJECT_ROOT / "include" / "sql",
    f"{PACKAGE}/data/knowledge": PROJECT_ROOT / "include" / "knowledge",
    f"{PACKAGE}/ui/templates": PROJECT_ROOT / PACKAGE / "ui" / "templates",
    f"{PACKAGE}/ui/static": PROJECT_ROOT / PACKAGE / "ui" / "static",
}
ENTRY_POINTS = {
    "apache_airflow_provider": {"provider_info": f"{PACKAGE}.provider_info:get_provider_info"},
    "airflow.plugins": {
        "doctor_listener": f"{PACKAGE}.plugins:DoctorListenerPlugin",
        "doctor_ui": f"{PACKAGE}.plugins:DoctorUIPlugin",
    },
}
PLUGINS = ("doctor_listener", "doctor_ui")
DAG_FILES = ("doctor.py", "doctor_sweeper.py")
# Run by the fresh virtualenv's interpreter: where the doctor and its data come from.
PROBE = """
import json, sys, sysconfig
from importlib.metadata import version
import airflow_doctor
from airflow_doctor import resources
from airflow_doctor.provider_info import get_provider_info

config = get_provider_info().get("config", {}).get("doctor", {}).get("options", {})
print(json.dumps({
    "file": airflow_doctor.__file__,
    "version": airflow_doctor.__version__,
    "site_packages": sysconfig.get_paths()["purelib"],
    "data": {kind: str(resources.data_dir(kind)) for kind in resources.KINDS},
    "sys_path": sys.path,
    "airflow": version("apache-airflow"),
    "torch": version("torch"),
    "config_defaults": {name: option.get("default") for name, option in config.items()},
}))
"""


class CheckError(Exception):
    """A step the later checks depend on failed; the message says what it found."""


@dataclass
class Check:
    """One row of the closing table."""

    name: str
    passed: bool
    found: str
    seconds: float


class Report:
    """The checks run so far, printed as a table at the end."""

    def __init__(self) -> None:
        self.checks: list[Check] = []
        self.started = time.monotonic()

    def add(self, name: str, passed: bool, found: str, seconds: float = 0.0) -> bool:
        self.checks.append(Check(name, passed, found, seconds))
        say(f"{'PASS' if passed else 'FAIL'}  {name}: {found}")
        return passed

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[dict]:
        """Time a step whose body fills `result["found"]` and may set `result["passed"] = False`.

        Raises:
            CheckError: re-raised after recording the step as failed with its message.
        """
        say(f"{name} ...")
        result: dict = {"passed": True, "found": ""}
        start = time.monotonic()
        try:
            yield result
        except CheckError as exc:
            self.add(name, False, str(exc), time.monotonic() - start)
            raise
        self.add(name, result["passed"], result["found"], time.monotonic() - start)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def print_table(self, stopped: str | None) -> None:
        width = max(len(c.name) for c in self.checks) if self.checks else 10
        print(f"\n{'check':<{width}}  result  seconds  found")
        print(f"{'-' * width}  ------  -------  {'-' * 40}")
        for c in self.checks:
            lines = c.found.splitlines() or [""]
            result = "PASS" if c.passed else "FAIL"
            print(f"{c.name:<{width}}  {result:<6}  {c.seconds:7.1f}  {lines[0]}")
            for line in lines[1:]:
                print(f"{'':<{width}}  {'':<6}  {'':>7}  {line}")
        if stopped:
            print(f"\nStopped early: {stopped}")
        total = time.monotonic() - self.started
        verdict = "PASSED" if self.passed and not stopped else "FAILED"
        print(
            f"\nPACKAGE CHECK {verdict} in {total:.0f}s ({sum(c.passed for c in self.checks)} of "
            f"{len(self.checks)} checks passed; logs in {STATE / 'logs'} and {STATE / 'run' / 'logs'})"
        )


def say(message: str) -> None:
    print(message, flush=True)


def run_logged(argv: list[str], log_name: str, *, env: dict | None = None, cwd: Path | None = None) -> str:
    """Run a command with its output in STATE/logs/<log_name>; return the output.

    Raises:
        CheckError: a non-zero exit, with the last lines of the output.
    """
    log_path = STATE / "logs" / log_name
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    log_path.write_text(f"$ {' '.join(argv)}\n{proc.stdout}\n{proc.stderr}")
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise CheckError(
            f"`{' '.join(map(str, argv[:4]))} ...` exited {proc.returncode} ({log_path}):\n{tail}"
        )
    return proc.stdout


# --- 1-2: build and read the distributions -----------------------------------------------------------


def build(report: Report) -> tuple[Path, Path]:
    """Build the sdist and the wheel from it; return (sdist, wheel).

    Raises:
        CheckError: the build failed or did not produce one of each.
    """
    dist = STATE / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    with report.step("sdist and wheel built by `python -m build`") as result:
        run_logged([sys.executable, "-m", "build", "--outdir", str(dist), str(PROJECT_ROOT)], "build.log")
        sdists, wheels = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
        if len(sdists) != 1 or len(wheels) != 1:
            raise CheckError(f"expected one sdist and one wheel in {dist}, found {sorted(dist.iterdir())}")
        result["found"] = "\n".join(
            f"{path.name} ({path.stat().st_size // 1024} KiB)" for path in (sdists[0], wheels[0])
        )
    return sdists[0], wheels[0]


def source_files(folder: Path) -> set[str]:
    """Files under `folder`, relative to it, without Python's caches."""
    return {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def check_sdist(report: Report, sdist: Path) -> None:
    """The sdist holds pyproject.toml, the package and the include/ folders the wheel maps."""
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    wanted = ["pyproject.toml", "README.md", f"{PACKAGE}/__init__.py"]
    wanted += [
        f"include/{kind}/{name}"
        for kind in ("prompts", "sql", "knowledge")
        for name in source_files(PROJECT_ROOT / "include" / kind)
    ]
    missing = [name for name in wanted if name not in names]
    report.add(
        "sdist carries what the wheel is built from",
        not missing,
        f"missing: {', '.join(missing[:8])}"
        if missing
        else f"{len(names)} files, with pyproject.toml and all {len(wanted) - 3} files of include/",
    )


def check_wheel(report: Report, wheel: Path) -> list[str]:
    """Package data, UI files, nothing outside the package, and the entry points; return Requires-Dist."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        entry_points_text = archive.read(f"{dist_info}/entry_points.txt").decode()
        metadata = Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
    found, problems = [], []
    for prefix, source in WHEEL_MIRRORS.items():
        in_wheel = {n[len(prefix) + 1 :] for n in names if n.startswith(prefix + "/")}
        expected = source_files(source)
        missing = sorted(expected - in_wheel)
        if not in_wheel or missing:
            problems.append(f"{prefix}: {len(in_wheel)} files, missing {missing[:5]}")
        found.append(f"{prefix.removeprefix(PACKAGE + '/')}: {len(in_wheel)}")
    strays = sorted({n.split("/")[0] for n in names} - {PACKAGE, dist_info})
    if strays:
        problems.append(f"outside the package: {strays}")
    caches = [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    if caches:
        problems.append(f"compiled caches: {caches[:3]}")
    report.add(
        "wheel holds package data and UI files",
        not problems,
        "\n".join(problems)
        if problems
        else "files: " + ", ".join(found) + "; nothing outside airflow_doctor/",
    )

    parser = configparser.ConfigParser()
    parser.optionxform = str  # entry point names are case-sensitive
    parser.read_string(entry_points_text)
    declared = {section: dict(parser[section]) for section in parser.sections()}
    wrong = [
        f"[{group}] {name} = {declared.get(group, {}).get(name)!r}, expected {target!r}"
        for group, targets in ENTRY_POINTS.items()
        for name, target in targets.items()
        if declared.get(group, {}).get(name) != target
    ]
    report.add(
        "wheel declares the provider and plugin entry points",
        not wrong,
        "\n".join(wrong)
        if wrong
        else "\n".join(
            f"[{g}] " + ", ".join(f"{n} = {t}" for n, t in ts.items()) for g, ts in ENTRY_POINTS.items()
        ),
    )
    return sorted(metadata.get_all("Requires-Dist") or [])


def check_pins(report: Report, requirements: list[str]) -> None:
    """requirements.txt (what the Docker image installs) pins every dependency of the wheel, within range.

    apache-airflow is left to the runtime image, which ships it.
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pin = Requirement(line)
            pins[canonicalize_name(pin.name)] = next(
                (s.version for s in pin.specifier if s.operator == "=="), None
            )
    problems = []
    needs = [Requirement(text) for text in requirements]
    needs = [need for need in needs if canonicalize_name(need.name) != "apache-airflow"]
    for need in needs:
        name = canonicalize_name(need.name)
        if pins.get(name) is None:
            problems.append(f"{need.name}: no == pin")
        elif not need.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{need.name}=={pins[name]} outside {need.specifier}")
    report.add(
        "requirements.txt pins every dependency of the wheel",
        not problems,
        "\n".join(problems) if problems else f"{len(needs)} dependencies pinned within their ranges",
    )


# --- 3: the fresh virtualenv ------------------------------------------------------------------------


def venv_key(requirements: list[str]) -> str:
    """The cache key of the fresh virtualenv: Python's version, the pins and the wheel's requirements."""
    material = json.dumps([sys.version_info[:3], AIRFLOW_PIN, TORCH_PIN, requirements])
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def fresh_venv(report: Report, wheel: Path, requirements: list[str], rebuild: bool) -> Path:
    """Create (or reuse) the virtualenv and install the wheel into it; return its python.

    A cached virtualenv is reused only when its key matches and its install completed; any other
    cached one is deleted (each is about 2 GB).

    Raises:
        CheckError: venv creation or pip install failed.
    """
    key = venv_key(requirements)
    root = STATE / "venvs"
    venv = root / key
    stamp = venv / ".installed"
    root.mkdir(parents=True, exist_ok=True)
    for other in root.iterdir():
        if other != venv or rebuild or not stamp.exists():
            shutil.rmtree(other, ignore_errors=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
    name = f"fresh virtualenv: {AIRFLOW_PIN}, {TORCH_PIN}, the wheel"
    with report.step(name) as result:
        if stamp.exists():
            run_logged([*pip, "--no-deps", "--force-reinstall", str(wheel)], "pip-install-wheel.log")
            result["found"] = (
                f"reused {venv.relative_to(PROJECT_ROOT)} (same requirements); wheel reinstalled"
            )
        else:
            run_logged([sys.executable, "-m", "venv", str(venv)], "venv.log")
            run_logged([*pip, AIRFLOW_PIN, TORCH_PIN, str(wheel)], "pip-install.log")
            stamp.write_text(json.dumps({"requirements": requirements}, indent=2))
            why = "CI or --fresh" if rebuild else "no cached one with these requirements"
            result["found"] = f"created {venv.relative_to(PROJECT_ROOT)} ({why})"
        size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
        result["found"] += f"; {size / 2**30:.1f} GiB"
    with report.step("pip check in the fresh virtualenv") as result:
        proc = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True)
        result["passed"] = proc.returncode == 0
        result["found"] = (proc.stdout + proc.stderr).strip() or f"exit {proc.returncode}"
    return python


def clean_env(base: dict[str, str], python: Path) -> dict[str, str]:
    """`base` with the fresh virtualenv first on PATH and the repository on no Python path."""
    env = dict(base)
    env.pop("PYTHONHOME", None)
    env["PYTHONPATH"] = ""  # an empty PYTHONPATH adds nothing to sys.path
    env["VIRTUAL_ENV"] = str(python.parent.parent)
    env["PATH"] = os.pathsep.join(
        [
            str(python.parent),
            *(p for p in base.get("PATH", "").split(os.pathsep) if ".venv" not in Path(p).parts),
        ]
    )
    return env


# --- 4: the installed doctor and Airflow's CLI -----------------------------------------------------------


def check_installed(report: Report, python: Path, env: dict[str, str], workdir: Path) -> dict:
    """Where the fresh interpreter imports the doctor and its data from; return the probe's answer."""
    with report.step("doctor imported from the installed wheel") as result:
        probe = json.loads(run_logged([str(python), "-c", PROBE], "probe.log", env=env, cwd=workdir))
        site = Path(probe["site_packages"]).resolve()
        inside = {
            "airflow_doctor": Path(probe["file"]).resolve(),
            **{f"data/{kind}": Path(path).resolve() for kind, path in probe["data"].items()},
        }
        outside = [f"{what} at {path}" for what, path in inside.items() if not path.is_relative_to(site)]
        on_path = [p for p in probe["sys_path"] if p and Path(p).resolve() == PROJECT_ROOT]
        result["passed"] = not outside and not on_path
        result["found"] = (
            f"{Path(probe['file']).parent} (version {probe['version']}); data files from the same "
            f"site-packages; repository not on sys.path"
            if result["passed"]
            else "; ".join(
                [*(f"outside {site}: {o}" for o in outside), *(f"on sys.path: {p}" for p in on_path)]
            )
        )
    report.add(
        "Airflow 3.3.2 and the CPU build of torch",
        probe["airflow"] == AIRFLOW_PIN.split("==")[1] and probe["torch"].endswith("+cpu"),
        f"apache-airflow {probe['airflow']}, torch {probe['torch']}",
    )
    return probe


def airflow_cli(python: Path, args: list[str], env: dict[str, str], workdir: Path, log_name: str) -> str:
    """Output of the fresh virtualenv's `airflow ARGS`."""
    return run_logged([str(python.parent / "airflow"), *args], log_name, env=env, cwd=workdir)


def check_cli(report: Report, python: Path, env: dict[str, str], workdir: Path, probe: dict) -> None:
    """`airflow plugins`, `airflow providers list` and `airflow config list`, as a newcomer runs them."""
    with report.step("`airflow plugins` lists doctor_listener and doctor_ui") as result:
        plugins = json.loads(
            airflow_cli(python, ["plugins", "-o", "json"], env, workdir, "airflow-plugins.log")
        )
        ours = {p["name"]: p for p in plugins if p["name"] in PLUGINS}
        result["passed"] = set(ours) == set(PLUGINS)
        result["found"] = "\n".join(
            [f"{name}: from {ours[name]['source'].split(':')[0]}" for name in PLUGINS if name in ours]
            + [f"{name}: not listed" for name in PLUGINS if name not in ours]
        )
    with report.step("`airflow providers list` shows airflow-doctor") as result:
        providers = json.loads(
            airflow_cli(python, ["providers", "list", "-o", "json"], env, workdir, "airflow-providers.log")
        )
        ours = [p for p in providers if p["package_name"] == "airflow-doctor"]
        result["passed"] = bool(ours) and ours[0]["version"] == probe["version"]
        result["found"] = (
            f"airflow-doctor {ours[0]['version']}: {ours[0]['description']}"
            if ours
            else f"not among {len(providers)} providers"
        )
    with report.step("`airflow config list` has a [doctor] section with defaults") as result:
        text = airflow_cli(
            python,
            ["config", "list", "--section", "doctor", "--defaults", "--show-values"],
            env,
            workdir,
            "airflow-config.log",
        )
        listed = config_defaults(text, "doctor")
        declared = probe["config_defaults"]
        problems = []
        if listed is None:
            problems.append("no [doctor] section in `airflow config list`")
        elif not listed:
            problems.append("the [doctor] section lists no options")
        if not declared:
            problems.append("the provider info declares no `doctor` config section")
        for name, default in declared.items():
            shown = (listed or {}).get(name)
            if shown is None:
                problems.append(f"{name}: declared, not listed")
            elif default is not None and shown != str(default):
                problems.append(f"{name}: listed as {shown!r}, declared default {default!r}")
        result["passed"] = not problems
        result["found"] = (
            "\n".join(problems)
            if problems
            else f"{len(listed)} options, e.g. "
            + ", ".join(f"{k} = {v}" for k, v in list(listed.items())[:3])
        )


def config_defaults(text: str, section: str) -> dict[str, str] | None:
    """Options of one section in `airflow config list --defaults --show-values` output, or None.

    Defaults are printed commented out (`# name = value`) under the `[section]` header.
    """
    options: dict[str, str] | None = None
    current = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            current = stripped[1:-1]
            if current == section:
                options = {}
            continue
        if current != section or options is None:
            continue
        body = stripped.removeprefix("#").strip()
        name, sep, value = body.partition(" = ")
        if sep and name.isidentifier():
            options[name] = value.strip()
        elif body.endswith(" =") and body[:-2].isidentifier():
            options[body[:-2]] = ""
    return options


# --- 5: the stack and the demo -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def airflow_home(state_dir: Path) -> Path:
    """A fresh AIRFLOW_HOME: the two one-line DAG files and the demo DAGs, an empty plugins folder."""
    home = state_dir / "airflow"
    dags = home / "dags"
    dags.mkdir(parents=True)
    (home / "plugins").mkdir()
    for name in DAG_FILES:
        shutil.copy(PROJECT_ROOT / "dags" / name, dags / name)
    shutil.copytree(
        PROJECT_ROOT / "dags" / "examples", dags / "examples", ignore=shutil.ignore_patterns("__pycache__")
    )
    return home


def wait_for_dag_files(api, dag_files: list[str], timeout: float = 180) -> tuple[dict[str, list[str]], list]:
    """Wait until every DAG file has a DAG in the API or an import error; return (file -> dag ids, errors)."""
    deadline = time.monotonic() + timeout
    while True:
        dags = api.request_json("GET", "/api/v2/dags?limit=1000")["dags"]
        errors = api.request_json("GET", "/api/v2/importErrors?limit=100")["import_errors"]
        by_file: dict[str, list[str]] = {}
        for dag in dags:
            by_file.setdefault(dag.get("relative_fileloc") or "", []).append(dag["dag_id"])
        errored = {Path(e["filename"]).name for e in errors}
        pending = [f for f in dag_files if f not in by_file and Path(f).name not in errored]
        if not pending or time.monotonic() > deadline:
            return by_file, errors
        time.sleep(2)


def check_stack(report: Report, cfg: stack.StackConfig, dag_files: list[str]) -> None:
    """Start the stack from the fresh virtualenv; check the DAG folder parsed and the API's plugins.

    Raises:
        CheckError: the stack did not come up.
    """
    with report.step("local stack run by the fresh virtualenv") as result:
        try:
            state = stack.up(cfg)
        except (OSError, RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
            raise CheckError(f"{exc} (logs in {cfg.log_dir})") from exc
        result["found"] = (
            f"healthy in {state['startup_seconds']}s at {cfg.api_url}; api-server, scheduler, dag-processor, "
            f"triggerer and the embedding service run {cfg.interpreter}"
        )
    api = demo.api_for(cfg)
    with report.step("DAG folder parsed: one-line DAG files and demo DAGs") as result:
        by_file, errors = wait_for_dag_files(api, dag_files)
        missing = [f for f in dag_files if f not in by_file]
        result["passed"] = not missing and not errors
        lines = [
            f"{len(dag_files)} files, {sum(len(v) for v in by_file.values())} DAGs; "
            + ", ".join(f"{name} -> {by_file.get(name)}" for name in DAG_FILES)
        ]
        lines += [f"no DAG from {f}" for f in missing]
        lines += [
            f"import error in {e['filename']}: {(e.get('stack_trace') or '?').strip().splitlines()[-1]}"
            for e in errors
        ]
        result["found"] = "\n".join(lines)
    with report.step("API server loaded the plugins") as result:
        loaded = api.list_plugins()
        result["passed"] = all(p in loaded for p in PLUGINS)
        result["found"] = ", ".join(p for p in loaded if p in PLUGINS) or f"none of {PLUGINS} in {loaded}"


def check_demo(report: Report, cfg: stack.StackConfig) -> None:
    """scripts/demo.py's run on this stack, split into its two outcomes."""
    say("\n=== The demo (scripts/demo.py) on the installed doctor")
    start = time.monotonic()
    status = demo.run_demo(cfg)
    seconds = time.monotonic() - start
    result_file = cfg.state_dir / "demo_result.json"
    timelines = {t["dag_id"]: t for t in json.loads(result_file.read_text())} if result_file.exists() else {}
    for dag_id, (task_id, expected) in demo.DEMOS.items():
        t = timelines.get(dag_id, {})
        label = f"{dag_id}.{task_id}"
        if expected == "auto_retry":
            passed = t.get("decision") == "auto_retry" and t.get("retry_outcome") == "success"
            found = (
                f"{t.get('error_class')} ({t.get('diagnoser')}, confidence {t.get('confidence')}): "
                f"{t.get('decision')}, retry {t.get('retry_outcome') or 'not run'}"
                + (
                    f", healed {t['seconds_to_healed']}s after the failure"
                    if "seconds_to_healed" in t
                    else ""
                )
            )
            report.add(f"transient failure healed ({label})", passed, found, seconds)
        else:
            delivered = demo.escalation_delivered(cfg, [label])
            passed = (
                t.get("decision") == "escalate" and t.get("retried_at") is None and t.get("state") == "failed"
            ) and delivered
            found = (
                f"{t.get('error_class')} ({t.get('diagnoser')}): {t.get('decision')}, "
                f"{'not retried' if t.get('retried_at') is None else 'RETRIED'}, state {t.get('state')}; "
                f"email and Slack message {'received' if delivered else 'NOT received'}"
            )
            report.add(f"permanent failure escalated ({label})", passed, found, 0.0)
    if status != 0 and all(c.passed for c in report.checks[-len(demo.DEMOS) :]):
        report.add("demo verdict", False, f"scripts/demo.py's run_demo returned {status}", 0.0)


# --- main ---------------------------------------------------------------------------------------------------


class Interrupted(SystemExit):
    """SIGINT or SIGTERM arrived: unwind, so that the stack is stopped on the way out."""


def _interrupted(signum: int, _frame) -> None:
    raise Interrupted(f"interrupted by {signal.Signals(signum).name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.package_check", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--fresh", action="store_true", help="build the virtualenv anew (the default when CI is set)"
    )
    parser.add_argument("--keep-running", action="store_true", help="leave the stack up afterwards")
    args = parser.parse_args(argv)
    rebuild = args.fresh or bool(os.environ.get("CI"))
    # Both set here: a shell that starts this in the background has SIGINT ignored by default.
    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, _interrupted)
    report = Report()
    cfg: stack.StackConfig | None = None
    stopped = None
    try:
        sdist, wheel = build(report)
        check_sdist(report, sdist)
        requirements = check_wheel(report, wheel)
        check_pins(report, requirements)
        python = fresh_venv(report, wheel, requirements, rebuild)

        state_dir = STATE / "run"
        if state_dir.exists():
            stack.down(stack.StackConfig(state_dir=state_dir))  # a run killed with SIGKILL left it up
            shutil.rmtree(state_dir)
        home = airflow_home(state_dir)
        dag_files = sorted(p.relative_to(home / "dags").as_posix() for p in (home / "dags").rglob("*.py"))
        cfg = stack.StackConfig(
            state_dir=state_dir,
            api_port=free_port(),
            pg_port=free_port(),
            smtp_port=free_port(),
            slack_port=free_port(),
            python=python,
            workdir=state_dir,
        )
        cfg.extra_env = clean_env(
            {
                "PATH": os.environ.get("PATH", ""),
                "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
            },
            python,
        )
        env = stack.airflow_env(cfg)
        probe = check_installed(report, python, env, state_dir)
        check_cli(report, python, env, state_dir, probe)
        check_stack(report, cfg, dag_files)
        check_demo(report, cfg)
    except CheckError as exc:
        stopped = str(exc).splitlines()[0]
    except Interrupted as exc:
        stopped = str(exc)
    except Exception as exc:  # noqa: BLE001 - the table still says how far the check got
        traceback.print_exc()
        stopped = f"{type(exc).__name__}: {exc}"
    finally:
        # A second Ctrl-C must not leave the stack half stopped.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if cfg is not None and not args.keep_running:
            say("stopping the stack ...")
            stack.down(cfg)
        elif cfg is not None:
            say(
                f"stack left running at {cfg.api_url} "
                f"(stop: python -m scripts.stack down --state-dir {cfg.state_dir})"
            )
    report.print_table(stopped)
    return 0 if report.passed and not stopped else 1


if __name__ == "__main__":
    sys.exit(main())

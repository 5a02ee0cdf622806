"""Time to heal: transient task failures on a real local Airflow, healed by the doctor and by Airflow's retry.

What is measured: for every failure, the seconds from the failure to each milestone of its healing:
the doctor DAG run that claimed it was queued and started (negative when that run already existed:
a run claims every failure waiting when its collect task runs), the failure was claimed
(`doctor.inbox.claimed_at`), the diagnosis was done (`diagnosed_at` returned by the doctor's
`handle_failures.gate_on_confidence` task instance for it: when the gate decided), the clear was
issued (the `doctor.clears` row, written just before the clear call, so it includes any backoff),
the retried try was running (its start_date) and it succeeded (its end_date). Reported as
p50/p95/max per phase, with the gaps between milestones, when each doctor task ran, how many
failures each doctor run handled, and why any failure was not healed.

How: the stack of `make demo` (scripts/stack.py) on temporary state folders and free ports, one
stack per phase. The five `example_transient_*` DAGs (dags/examples/example_transient_failures.py:
database starting up (57P03), HTTP 503, read timeout, serialization failure, DNS EAI_AGAIN; each fails its
first try only, retries=0) are triggered round-robin, one every `--spacing` s, N times.
- offline: no `doctor_llm` connection, so the doctor diagnoses with memory and rules.
- baseline: in the offline stack after its doctor phases have settled (so nothing else is measured
  meanwhile), N runs of the `baseline_transient_*` twins (retries=1, Airflow's default retry_delay of
  300 s, tagged doctor:off), measured in the first repeat only (Airflow's own behaviour). Failure =
  end of try 1 (the API's end_date; the doctor phases use the task runner's failed_at from the
  inbox, a few ms earlier).
- llm: a stack of its own, started after the offline stack has stopped, whose `doctor_llm` points
  at the loopback Messages API server (tests/fakes/anthropic_server.py) answering every call after a
  fixed `--llm-delay` s with a valid `record_diagnosis` call: transient, confidence 0.9, the
  excerpt's exception line as evidence, and the class and action the offline rules give that line
  (so both doctor phases pay the same backoffs). [doctor] memory_first is off there, so every
  diagnosis asks the LLM.
- escalation: in the offline stack after its failures have settled, `--escalations` permanent
  failures (example_orders_report, KeyError), one every `--spacing` s: seconds from the failure to
  the escalation's email at the SMTP sink and its Slack message at the webhook sink.
Each phase runs alone: no phase overlaps another phase or another stack's start. For every phase
the bench also reports the CPU seconds the stack's processes spent (user + system of every process
of the stack's sessions and of Postgres, with the children they reaped: the task processes), per
handled failure, above the stack's idle rate measured for `--idle` s before the phase, and the
machine's 1-minute load. `--repeat` runs everything that many times; the docs quote the median of
the repeats' p50s with their spread (min-max).
A failure that has not settled `--timeout` s after its trigger (baseline: 300 s more) is reported
as not healed, with the doctor task it was still in.

Usage: python -m bench.mttr [--n 20] [--spacing 7] [--phases offline,escalation,llm,baseline]
       [--escalations 10] [--llm-delay 2] [--repeat 3] [--idle 15]
       [--timeout 240] [--keep-logs DIR] [--name mttr] ; prints the tables, writes
       bench/results/<name>.json. The doctor's backoff is [doctor] retry_backoff_seconds
       (default 1 s); set AIRFLOW__DOCTOR__RETRY_BACKOFF_SECONDS for a variant run (and --name).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

from bench.common import ROOT, header, machine, percentile, write_result

DEMO_FILE = ROOT / "dags" / "examples" / "example_transient_failures.py"
BASELINE_RETRY_DELAY_S = 300.0  # [core] default_task_retry_delay in Airflow 3.3 (config.yml default)
# The doctor's task instance that embeds, retrieves, diagnoses, gates and (on auto_retry) clears;
# "diagnosis done" is the `diagnosed_at` it returns (when the gate decided), else its end.
DIAGNOSE_TASKS = ("handle_failures.gate_on_confidence",)
TERMINAL = {"success", "failed", "skipped", "upstream_failed", "removed"}
DOCTOR_MILESTONES = {
    "queued": "doctor run queued",
    "started": "doctor run started",
    "claimed": "failure claimed",
    "diagnosed": "diagnosis done",
    "cleared": "clear issued",
    "running": "retried try running",
    "succeeded": "retried try succeeded",
}
BASELINE_MILESTONES = ("running", "succeeded")
# Issue 13's goals: failure -> retried try running (offline p50; with the 2 s LLM p50 and p95) and
# failure -> escalation email received (p50).
GOAL = {
    "offline": {"running_p50_s": 5.0},
    "llm": {"running_p50_s": 8.0, "running_p95_s": 15.0},
    "escalation_email_p50_s": 10.0,
}
PERMANENT_DAG, PERMANENT_TASK = "example_orders_report", "build_report"  # KeyError on every try


def _ts(value) -> datetime | None:
    if value in (None, ""):
        return None
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _secs(t0: datetime | None, t: datetime | None) -> float | None:
    return round((t - t0).total_seconds(), 2) if t0 and t else None


def _state(value) -> str:
    return str(getattr(value, "value", value))


# -- the loopback LLM ------------------------------------------------------------------------


def llm_answer(delay: float):
    """A reply function for AnthropicLoopback: a valid `record_diagnosis` call for the prompt's error.

    Returns:
        fn(request body) -> reply dict: transient, confidence 0.9, evidence = the last excerpt line
        naming the prompt's exception type (verbatim, so it is grounded), error class and action
        from the offline rules for that line (retry when no rule matches), answered after `delay` s.
    """
    from airflow_doctor.judgement.rules import match_rule
    from airflow_doctor.models import RETRY_ACTIONS, Action
    from tests.fakes.anthropic_server import tool_message

    def answer(body: dict) -> dict:
        content = body["messages"][0]["content"]
        prompt = content if isinstance(content, str) else " ".join(b.get("text", "") for b in content)
        log = prompt.split("<untrusted_log>\n", 1)[-1].split("\n</untrusted_log>", 1)[0]
        found = re.search(r"Exception type: (.*)\.\n<untrusted_log>", prompt)
        exc_type = found.group(1) if found and found.group(1) != "unknown" else None
        lines = [line.strip() for line in log.splitlines() if line.strip()]
        evidence = next(
            (x for x in reversed(lines) if exc_type and exc_type in x), lines[-1] if lines else ""
        )
        rule = match_rule(None, evidence, [])
        retry_rule = rule is not None and rule.transient and rule.action in RETRY_ACTIONS
        tool_input = {
            "error_class": rule.error_class if retry_rule else "transient_connection_error",
            "root_cause": "A remote service the task depends on failed for a moment (connection, "
            "overload or conflict); the task and its input are not at fault.",
            "transient": True,
            "recommended_action": (rule.action if retry_rule else Action.retry).value,
            "confidence": 0.9,
            "fix_steps": ["Retry the task; check the remote service if the error recurs."],
            "evidence": [evidence],
        }
        return {**tool_message(tool_input), "delay": delay}

    return answer


# -- driving a stack ---------------------------------------------------------------------------


def new_stack(state_dir: Path, llm_base_url: str | None = None, extra_env: dict | None = None):
    """A StackConfig on free loopback ports in `state_dir` (never the defaults of `make up`)."""
    from scripts.stack import StackConfig
    from tests.conftest import free_port

    return StackConfig(
        state_dir=state_dir,
        api_port=free_port(),
        pg_port=free_port(),
        smtp_port=free_port(),
        slack_port=free_port(),
        llm_base_url=llm_base_url,
        extra_env=extra_env or {},
    )


def plan(kinds: list[str], n: int, spacing: float, prefix: str, start: float = 0.0) -> list[dict]:
    """N failures of the `<prefix>_transient_<kind>` DAGs, round-robin, one every `spacing` s.

    Returns:
        [{"at": seconds after the phase start, "dag_id", "task_id", "baseline": bool}].
    """
    from dags.examples.example_transient_failures import TRANSIENT_KINDS

    return [
        {
            "at": start + i * spacing,
            "dag_id": f"{prefix}_transient_{kinds[i % len(kinds)]}",
            "task_id": TRANSIENT_KINDS[kinds[i % len(kinds)]][0],
            "baseline": prefix == "baseline",
        }
        for i in range(n)
    ]


def drive(cfg, failures: list[dict], timeout: float, baseline_timeout: float) -> list[float]:
    """Trigger every planned failure at its time, then wait until each has settled.

    Settled: the retried try ended, or the doctor recorded that it will not retry. A failure gets
    `timeout` s (baseline: `baseline_timeout` s) after its trigger. Adds "run_id" and "triggered_at"
    (and "timed_out" when it did not settle) to each failure dict, in place.

    Returns:
        the 1-minute load averages sampled while triggering and waiting (the machine is shared).
    """
    from scripts.demo import api_for, kb_for, trigger, wait_for_dags

    api, kb = api_for(cfg), kb_for(cfg)
    wait_for_dags(api, ["doctor", *sorted({f["dag_id"] for f in failures})], timeout=180)
    t0 = time.monotonic()
    load = []
    for f in sorted(failures, key=lambda f: f["at"]):
        time.sleep(max(0.0, t0 + f["at"] - time.monotonic()))
        load.append(os.getloadavg()[0])
        for attempt in (1, 2, 3):
            try:
                f["run_id"] = trigger(api, f["dag_id"])
                break
            except Exception as exc:  # noqa: BLE001 - a busy API server: try again, then give up
                if attempt == 3:
                    raise
                print(f"  (trigger of {f['dag_id']} failed: {exc}; trying again)", flush=True)
                time.sleep(2)
        f["triggered_at"] = time.monotonic()
        print(f"  {time.monotonic() - t0:6.1f}s  triggered {f['dag_id']} ({f['run_id']})", flush=True)
    pending = list(failures)
    while pending:
        time.sleep(3)
        load.append(os.getloadavg()[0])
        states = _current_tries(api, pending)
        given_up = _not_retried(kb, [f for f in pending if not f["baseline"]])
        still = []
        for f in pending:
            try_number, state = states.get((f["dag_id"], f["run_id"]), (0, ""))
            limit = baseline_timeout if f["baseline"] else timeout
            if try_number >= 2 and state in TERMINAL:
                continue
            if (f["dag_id"], f["run_id"]) in given_up and try_number <= 1:
                continue
            if time.monotonic() - f["triggered_at"] > limit:
                f["timed_out"] = True
                continue
            still.append(f)
        if len(still) != len(pending):
            print(f"  {time.monotonic() - t0:6.1f}s  {len(still)} failure(s) not settled yet", flush=True)
        pending = still
    return load


def _current_tries(api, failures: list[dict]) -> dict[tuple[str, str], tuple[int, str]]:
    """(dag_id, run_id) -> (try_number, state) of each failing task instance, one API call per DAG."""
    out = {}
    for dag_id, task_id in sorted({(f["dag_id"], f["task_id"]) for f in failures}):
        try:
            tis = api.list_task_instances(dag_id, "~", task_id=task_id, limit=1000)
        except Exception as exc:  # noqa: BLE001 - a busy API server: ask again at the next poll
            print(f"  (could not list {dag_id}: {exc})")
            continue
        for ti in tis:
            out[(dag_id, ti["dag_run_id"])] = (int(ti.get("try_number") or 0), _state(ti.get("state")))
    return out


def _not_retried(kb, failures: list[dict]) -> set[tuple[str, str]]:
    """(dag_id, run_id) of failures whose recorded case says the doctor did not clear them."""
    if not failures:
        return set()
    try:
        with kb.connection() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT c.dag_id, c.run_id FROM doctor.failure_cases c JOIN doctor.remediations r "
                "ON r.case_id = c.id WHERE c.kind = 'observed' AND c.dag_id = ANY(%s) AND NOT r.cleared",
                (sorted({f["dag_id"] for f in failures}),),
            )
            return {(d, r) for d, r in cur.fetchall()}
    except Exception:  # noqa: BLE001 - the schema may be mid-refactor: rely on the timeout
        return set()


# -- what happened to each failure -----------------------------------------------------------


def _by_run(rows: list[dict]) -> dict[tuple[str, str], dict]:
    """Rows keyed by (dag_id, run_id): one failure per DAG run in this benchmark."""
    return {(r["dag_id"], r["run_id"]): r for r in rows}


def _rows(kb, query: str, params: tuple) -> list[dict]:
    with kb.connection() as conn, conn.cursor() as cur:
        cur.execute(query, params)
        names = [c.name for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def doctor_records(cfg, failures: list[dict]) -> list[dict]:
    """One record per doctor-handled failure: milestones (seconds after the failure), the decision,
    the doctor tasks' timings and, when it was not healed, why.

    Returns:
        [{"dag_id", "run_id", "failed_at", "doctor_run_id", "seconds": {milestone: s | None},
        "decision", "action", "diagnoser", "llm_latency_ms", "reasons", "retried_state", "healed",
        "why_not", "diagnose_task", "doctor_tasks": {task_id: {"queued", "start", "end"}}}].
    """
    from airflow_doctor.models import FailureRef
    from scripts.demo import api_for, kb_for

    api, kb = api_for(cfg), kb_for(cfg)
    dag_ids = sorted({f["dag_id"] for f in failures})
    inbox = _by_run(
        _rows(
            kb,
            "SELECT i.dag_id, i.run_id, i.failed_at, i.received_at, i.claimed_by, i.claimed_at, "
            "c.cleared_at FROM doctor.inbox i "
            "LEFT JOIN doctor.clears c USING (dag_id, run_id, task_id, map_index, try_number) "
            "WHERE i.dag_id = ANY(%s) AND i.try_number = 1",
            (dag_ids,),
        )
    )
    try:
        cases = _by_run(
            _rows(
                kb,
                "SELECT c.dag_id, c.run_id, d.diagnoser, d.recommended_action, d.confidence, d.latency_ms, "
                "r.decision, r.reasons, r.cleared, r.outcome FROM doctor.failure_cases c "
                "LEFT JOIN LATERAL (SELECT * FROM doctor.diagnoses WHERE case_id = c.id ORDER BY id DESC "
                "LIMIT 1) d ON true "
                "LEFT JOIN LATERAL (SELECT * FROM doctor.remediations WHERE case_id = c.id ORDER BY id DESC "
                "LIMIT 1) r ON true WHERE c.kind = 'observed' AND c.dag_id = ANY(%s) AND c.try_number = 1",
                (dag_ids,),
            )
        )
    except Exception as exc:  # noqa: BLE001 - decisions are context; the timings do not need them
        print(f"  (could not read the recorded cases: {exc})")
        cases = {}
    runs: dict[str, dict] = {}
    records = []
    for f in failures:
        ref = FailureRef(dag_id=f["dag_id"], run_id=f["run_id"], task_id=f["task_id"], try_number=1)
        row = inbox.get((f["dag_id"], f["run_id"])) or {}
        case = cases.get((f["dag_id"], f["run_id"])) or {}
        t0 = row.get("failed_at") or _try_end(api, ref, 1)
        retried = _try(api, ref, 2)
        rec = {
            "dag_id": f["dag_id"],
            "task_id": f["task_id"],
            "run_id": f["run_id"],
            "failed_at": t0,
            "doctor_run_id": row.get("claimed_by"),
            "seconds": dict.fromkeys(DOCTOR_MILESTONES),
            "decision": case.get("decision"),
            "action": case.get("recommended_action"),
            "diagnoser": case.get("diagnoser"),
            "llm_latency_ms": case.get("latency_ms") if case.get("diagnoser") == "llm" else None,
            "reasons": case.get("reasons") or [],
            "retried_state": retried.get("state"),
            "diagnose_task": None,
            "doctor_tasks": {},
        }
        s = rec["seconds"]
        s["claimed"] = _secs(t0, row.get("claimed_at"))
        s["cleared"] = _secs(t0, row.get("cleared_at"))
        s["running"] = _secs(t0, _ts(retried.get("start_date")))
        if retried.get("state") == "success":
            s["succeeded"] = _secs(t0, _ts(retried.get("end_date")))
        if rec["doctor_run_id"]:
            run = runs.get(rec["doctor_run_id"]) or runs.setdefault(
                rec["doctor_run_id"], _doctor_run(api, rec["doctor_run_id"])
            )
            s["queued"] = _secs(t0, _ts(run.get("queued_at")))
            s["started"] = _secs(t0, _ts(run.get("start_date")))
            index = _map_index(api, run, f["dag_id"], f["task_id"], f["run_id"])
            for ti in run["tis"]:
                if ti.map_index == -1 or (index is not None and ti.map_index == index):
                    rec["doctor_tasks"][ti.task_id] = {
                        "state": _state(ti.state),
                        "queued": _secs(t0, ti.queued_when),
                        "start": _secs(t0, ti.start_date),
                        "end": _secs(t0, ti.end_date),
                    }
            rec["diagnose_task"] = next((t for t in DIAGNOSE_TASKS if t in rec["doctor_tasks"]), None)
            if rec["diagnose_task"]:
                decided = _diagnosed_at(api, rec["doctor_run_id"], rec["diagnose_task"], index)
                s["diagnosed"] = (
                    _secs(t0, decided) if decided else rec["doctor_tasks"][rec["diagnose_task"]]["end"]
                )
        rec["healed"] = s["succeeded"] is not None
        rec["why_not"] = None if rec["healed"] else _why_not(f, row, case, retried, rec["doctor_tasks"])
        records.append(rec)
    return records


def _diagnosed_at(api, run_id: str, task_id: str, map_index: int | None) -> datetime | None:
    """When the gate decided: `diagnosed_at` in gate_on_confidence's XCom "decided" (a GroupDecision);
    None if unreadable."""
    if map_index is None:
        return None
    try:
        entry = api.get_xcom_entry("doctor", run_id, task_id, "decided", map_index=map_index)
        value = entry.get("value")
        value = json.loads(value) if isinstance(value, str) else value
        return _ts((value or {}).get("diagnosed_at"))
    except Exception:  # noqa: BLE001 - fall back to the task's end
        return None


def _why_not(f: dict, inbox: dict, case: dict, retried: dict, tasks: dict) -> str:
    """Why one failure was not healed, in one phrase."""
    if not inbox:
        return "never reached the doctor's inbox (the listener did not report it)"
    if not inbox.get("claimed_by"):
        return "no doctor run claimed it"
    if case.get("decision") and case["decision"] != "auto_retry":
        return f"the doctor decided {case['decision']}: " + "; ".join(case.get("reasons") or [])
    if retried.get("state") in TERMINAL:
        return f"the retried try ended {retried['state']}"
    busy = [f"{t} ({v['state']})" for t, v in tasks.items() if v["start"] is not None and v["end"] is None]
    where = f"; the doctor was still in {', '.join(busy)}" if busy else ""
    if not inbox.get("cleared_at"):
        return (
            "no clear was issued"
            + (" before the bench stopped waiting" if f.get("timed_out") else "")
            + where
        )
    if retried.get("state"):
        return f"the retried try was still {retried['state']} when the bench stopped waiting"
    return "cleared, but no retried try ran before the bench stopped waiting"


def baseline_records(cfg, failures: list[dict]) -> list[dict]:
    """One record per baseline failure: try 1's end -> try 2 running -> try 2 succeeded."""
    from airflow_doctor.models import FailureRef
    from scripts.demo import api_for

    api = api_for(cfg)
    records = []
    for f in failures:
        ref = FailureRef(dag_id=f["dag_id"], run_id=f["run_id"], task_id=f["task_id"], try_number=1)
        t0 = _try_end(api, ref, 1)
        retried = _try(api, ref, 2)
        seconds = {"running": _secs(t0, _ts(retried.get("start_date"))), "succeeded": None}
        if retried.get("state") == "success":
            seconds["succeeded"] = _secs(t0, _ts(retried.get("end_date")))
        healed = seconds["succeeded"] is not None
        why = None
        if not healed:
            why = (
                f"try 2 ended {retried['state']}"
                if retried.get("state") in TERMINAL
                else "try 2 had not ended when the bench stopped waiting"
            )
        records.append(
            {
                "dag_id": f["dag_id"],
                "task_id": f["task_id"],
                "run_id": f["run_id"],
                "failed_at": t0,
                "seconds": seconds,
                "retried_state": retried.get("state"),
                "healed": healed,
                "why_not": why,
            }
        )
    return records


def _try(api, ref, number: int) -> dict:
    try:
        return api.get_try(ref, number)
    except Exception:  # noqa: BLE001 - that try never ran
        return {}


def _try_end(api, ref, number: int) -> datetime | None:
    return _ts(_try(api, ref, number).get("end_date"))


def _doctor_run(api, run_id: str) -> dict:
    """A doctor DAG run (queued_at, start_date, ...) with its task instances under "tis"."""
    from airflow_doctor.hooks.airflow_api import TaskInstance

    try:
        run = api.get_dag_run("doctor", run_id)
        run["tis"] = [
            TaskInstance.model_validate(ti) for ti in api.list_task_instances("doctor", run_id, limit=1000)
        ]
    except Exception as exc:  # noqa: BLE001 - report the failure without the doctor's side
        print(f"  (could not read doctor run {run_id}: {exc})")
        run = {"tis": []}
    run["run_id"] = run_id
    return run


def _map_index(api, run: dict, dag_id: str, task_id: str, failed_run_id: str) -> int | None:
    """The map index of the doctor's mapped task group instance that handled one failure.

    The group is expanded over the list fetch_logs returns (groups: {"members": [ref, ...]}); the
    failure's group's position in that list is its map index. Without that XCom, the mapped
    instances' labels (rendered_map_index `dag_id.task_id`, maybe followed by " +N more") decide
    when they are unambiguous.
    """
    if "index" not in run:
        run["index"] = {}
        for unmapped in ("fetch_logs",):  # the groups the mapped task group expands over
            value = _return_value(api, run["run_id"], unmapped)
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                continue
            for i, item in enumerate(value):
                for ref in item.get("members") or [item]:
                    if isinstance(ref, dict) and "run_id" in ref:
                        run["index"][(ref.get("dag_id"), ref["run_id"], ref.get("task_id"))] = i
    if (dag_id, failed_run_id, task_id) in run["index"]:
        return run["index"][(dag_id, failed_run_id, task_id)]
    label = f"{dag_id}.{task_id}"
    indexes = {
        ti.map_index
        for ti in run["tis"]
        if ti.map_index >= 0 and (ti.rendered_map_index or "").split(" +")[0] == label
    }
    return indexes.pop() if len(indexes) == 1 else None


def _return_value(api, run_id: str, task_id: str):
    """The return value of an unmapped doctor task in one run (JSON data), or None."""
    import json

    try:
        entry = api.get_xcom_entry("doctor", run_id, task_id, "return_value", map_index=-1, deserialize=True)
    except Exception:  # noqa: BLE001 - the task returned nothing
        return None
    value = entry.get("value")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value


# -- summaries ----------------------------------------------------------------------------------


def stats(values: list[float | None]) -> dict:
    """{"n", "p50", "p95", "max"} of the values that are not None (seconds, one decimal)."""
    got = [v for v in values if v is not None]
    if not got:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    rnd = lambda x: round(x, 1)  # noqa: E731
    return {
        "n": len(got),
        "p50": rnd(percentile(got, 50)),
        "p95": rnd(percentile(got, 95)),
        "max": rnd(max(got, default=None)),
    }


def summarize(records: list[dict], milestones, retry_backoff_seconds: float) -> dict:
    """Percentiles of each milestone and of the gaps between them, doctor task timings, doctor runs.

    Returns:
        {"failures", "healed", "milestones": {m: stats}, "gaps": {"a -> b": stats},
        "doctor_tasks": {task_id: {"queued", "start", "end", "duration"}: p50 s after the failure},
        "actions": {action: {"n", "backoff_s", "dags"}}, "doctor_runs": {...}, "not_healed": [...]}.
        Gaps are taken per failure, a milestone before the failure (a doctor run that was already
        queued when it failed) counting as 0, so a failure's gaps add up to its milestones; their
        p50s need not add up to a milestone's p50.
    """
    names = list(milestones)
    out: dict = {
        "failures": len(records),
        "healed": sum(r["healed"] for r in records),
        "milestones": {m: stats([r["seconds"].get(m) for r in records]) for m in names},
        "gaps": {},
        "not_healed": [
            {"dag_id": r["dag_id"], "run_id": r["run_id"], "why": r["why_not"]}
            for r in records
            if not r["healed"]
        ],
    }
    for a, b in zip(["failure", *names], names, strict=False):
        values = []
        for r in records:
            start = 0.0 if a == "failure" else r["seconds"].get(a)
            end = r["seconds"].get(b)
            values.append(None if start is None or end is None else max(0.0, end) - max(0.0, start))
        out["gaps"][f"{a} -> {b}"] = stats(values)
    if not any("doctor_tasks" in r for r in records):
        return out
    tasks: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        for task_id, t in r["doctor_tasks"].items():
            for key in ("queued", "start", "end"):
                tasks[task_id][key].append(t[key])
            if t["start"] is not None and t["end"] is not None:
                tasks[task_id]["duration"].append(t["end"] - t["start"])
    out["doctor_tasks"] = {
        task_id: {k: stats(v)["p50"] for k, v in t.items()}
        for task_id, t in sorted(tasks.items(), key=lambda kv: stats(kv[1]["start"])["p50"] or 1e9)
    }
    out["diagnose_task"] = sorted({r["diagnose_task"] for r in records if r["diagnose_task"]})
    actions: dict[str, dict] = {}
    for r in records:
        a = actions.setdefault(r["action"] or "not recorded", {"n": 0, "backoff_s": 0.0, "dags": set()})
        a["n"] += 1
        a["dags"].add(r["dag_id"])
        if r["action"] == "retry_with_backoff":
            a["backoff_s"] = retry_backoff_seconds  # the first doctor clear of a task instance
    out["actions"] = {k: {**v, "dags": sorted(v["dags"])} for k, v in sorted(actions.items())}
    per_run = Counter(r["doctor_run_id"] for r in records if r["doctor_run_id"])
    out["doctor_runs"] = {
        "runs_with_failures": len(per_run),
        "failures_per_run": dict(sorted(Counter(per_run.values()).items())),
        "mean_failures_per_run": round(sum(per_run.values()) / len(per_run), 2) if per_run else None,
    }
    latencies = [r["llm_latency_ms"] / 1000 for r in records if r.get("llm_latency_ms")]
    if latencies:
        out["llm_call_s"] = stats(latencies)
    return out


def doctor_run_count(cfg, since: datetime) -> int | None:
    """How many doctor DAG runs were created since `since` (including runs that claimed nothing)."""
    from urllib.parse import quote

    from scripts.demo import api_for

    path = f"/api/v2/dags/doctor/dagRuns?run_after_gte={quote(since.isoformat())}&limit=1"
    try:
        return int(api_for(cfg).request_json("GET", path)["total_entries"])
    except Exception as exc:  # noqa: BLE001 - a count is extra
        print(f"  (no doctor run count: {exc})", flush=True)
        return None


# -- CPU of the stack ----------------------------------------------------------------------------


def _proc_stats() -> dict[int, tuple[int, int, float]]:
    """{pid: (ppid, session, CPU seconds)} of every process: user + system of the process and of the
    children it has reaped (proc(5): /proc/<pid>/stat fields 14-17), in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[int, int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # exited meanwhile
            continue
        fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 onwards
        ppid, session = int(fields[1]), int(fields[3])
        cpu = sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
        out[int(entry)] = (ppid, session, cpu)
    return out


def stack_cpu_seconds(cfg) -> float | None:
    """CPU seconds spent so far by the stack's processes: every process in the session of a process
    `scripts.stack.up` spawned (stack.json: the API server, scheduler, dag-processor, triggerer,
    embedding service, sinks; the scheduler's executor and the task processes are in its session),
    and Postgres (the postmaster of pgdata and its descendants). A process counts its reaped
    children, so task processes that ended are counted through their supervisor. None when the
    stack's pids are unknown.
    """
    try:
        pids = json.loads((cfg.state_dir / "stack.json").read_text())["pids"].values()
        postmaster = int((cfg.pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, KeyError, ValueError, IndexError):
        return None
    procs = _proc_stats()
    sessions = {procs[pid][1] for pid in pids if pid in procs}

    def under_postgres(pid: int) -> bool:
        for _ in range(64):  # a bounded walk up the tree
            if pid == postmaster:
                return True
            if pid not in procs or pid <= 1:
                return False
            pid = procs[pid][0]
        return False

    return round(
        sum(cpu for pid, (_, session, cpu) in procs.items() if session in sessions or under_postgres(pid)), 2
    )


#: The process title Airflow 3.3's task runner gives a task process (airflow/sdk/execution_time/
#: task_runner.py: `setproctitle(f"airflow worker -- {ti.id}")`).
TASK_PROCESS_TITLE = b"airflow worker -- "
#: The title of a LocalExecutor worker, the long-lived process that supervises one task process at a
#: time (airflow/executors/local_executor.py: "airflow worker -- LocalExecutor: <task or <idle>>").
SUPERVISOR_TITLE = b"airflow worker -- LocalExecutor"


def doctor_idle(api, timeout: float = 300) -> None:
    """Wait until no doctor DAG run is queued or running (what a failure made it do has ended).

    Raises:
        TimeoutError: a doctor run is still going after `timeout` s.
    """
    from scripts.demo import wait_until

    def idle() -> bool:
        path = "/api/v2/dags/doctor/dagRuns?state=queued&state=running&limit=1"
        return api.request_json("GET", path)["total_entries"] == 0

    time.sleep(2)  # a failure's asset event may not have made its run yet
    wait_until(idle, timeout, "the doctor's runs to end")


def scheduler_pid(cfg) -> int | None:
    """The pid of the stack's scheduler (its `stack.json`, written by scripts.stack.up), or None."""
    try:
        return int(json.loads((cfg.state_dir / "stack.json").read_text())["pids"]["scheduler"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


class TaskCPUSampler:
    """CPU seconds of the stack's task processes and of their supervisors, sampled from /proc every
    `interval` s in a thread.

    A task process is one whose title starts with TASK_PROCESS_TITLE (and not SUPERVISOR_TITLE); its
    last sample (user + system) counts, so each loses at most `interval` s of its end. A supervisor
    (a LocalExecutor worker) lives as long as the stack: only its CPU while the sampler runs counts
    (its last sample minus its first). With `cfg` (the stack's StackConfig), only the processes of
    that stack count (supervisors whose parent is its scheduler, task processes whose parent is one
    of them): another stack on the machine (a test run) is left out.
    """

    def __init__(self, interval: float = 0.1, cfg=None) -> None:
        import threading

        self.interval = interval
        self._root = scheduler_pid(cfg) if cfg is not None else None
        self._seen: dict[tuple[int, float], float] = {}
        self._ti: dict[tuple[int, float], str] = {}  # task process -> its task instance try's id
        self._parent: dict[tuple[int, float], int] = {}  # any process seen -> its parent's pid
        self._supervisors: dict[tuple[int, float], list[float]] = {}  # -> [first, last] CPU s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="task-cpu", daemon=True)

    def _run(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._stop.is_set():
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    title = Path(f"/proc/{entry}/cmdline").read_bytes()
                    if not title.startswith(TASK_PROCESS_TITLE):
                        continue
                    raw = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                fields = raw[raw.rindex(")") + 2 :].split()
                key = (int(entry), float(fields[19]))  # starttime: with the pid, one process
                cpu = (int(fields[11]) + int(fields[12])) / tick
                self._parent[key] = int(fields[1])
                if title.startswith(SUPERVISOR_TITLE):
                    self._supervisors.setdefault(key, [cpu, cpu])[1] = cpu
                    continue
                self._seen[key] = cpu
                self._ti[key] = title[len(TASK_PROCESS_TITLE) :].split(b"\0")[0].decode(errors="replace")
            self._stop.wait(self.interval)

    def __enter__(self) -> TaskCPUSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def figures(self, handled: int, cfg=None) -> dict:
        """{"task_processes", "task_cpu_s", "supervisor_cpu_s", and each per handled failure (None for
        none handled)}; with the stack's `cfg`, also "by_task": {task: {"processes", "cpu_s"} per
        handled failure} (`by_task`)."""
        seen, supervised = self._seen, self._supervisors
        if self._root is not None:  # only this stack's: its scheduler's workers and their children
            ours = {pid for (pid, _), parent in self._parent.items() if parent == self._root}
            supervised = {k: v for k, v in supervised.items() if k[0] in ours}
            seen = {k: v for k, v in seen.items() if self._parent.get(k) in ours}
        processes, cpu = len(seen), round(sum(seen.values()), 1)
        supervisors = round(sum(last - first for first, last in supervised.values()), 1)
        out = {
            "task_processes": processes,
            "task_cpu_s": cpu,
            "supervisor_cpu_s": supervisors,
            "task_processes_per_handled_failure": round(processes / handled, 1) if handled else None,
            "task_cpu_per_handled_failure_s": round(cpu / handled, 2) if handled else None,
            "supervisor_cpu_per_handled_failure_s": round(supervisors / handled, 2) if handled else None,
        }
        if cfg is not None and handled:
            out["by_task"] = self.by_task(cfg, handled, seen)
        return out

    def by_task(self, cfg, handled: int, seen: dict[tuple[int, float], float]) -> dict[str, dict] | None:
        """The task processes `seen` ({process: CPU s}, as `figures` counts them): each task's
        processes and CPU seconds per handled failure, keyed by the doctor's task id
        ("doctor.<task_id>", "doctor_sweeper.<task_id>") or "failing task" for any other DAG's; the
        task instance try of each process comes from its title and is looked up in Airflow's
        metadata database (its current and history tables: each try has its own id). None when that
        database cannot be read."""
        import psycopg

        ids = sorted({self._ti[key] for key in seen if key in self._ti})
        try:
            with psycopg.connect(cfg.database_uri("airflow"), connect_timeout=5) as conn:
                rows = conn.execute(
                    "SELECT id::text, dag_id, task_id FROM task_instance WHERE id::text = ANY(%s) "
                    "UNION SELECT task_instance_id::text, dag_id, task_id FROM task_instance_history "
                    "WHERE task_instance_id::text = ANY(%s)",
                    (ids, ids),
                ).fetchall()
        except Exception as exc:  # noqa: BLE001 - a breakdown is extra
            print(f"  (no per-task breakdown: {exc})", flush=True)
            return None
        doctors = ("doctor", "doctor_sweeper")
        names = {
            ti: f"{dag}.{task.split('.')[-1]}" if dag in doctors else "failing task" for ti, dag, task in rows
        }
        totals: dict[str, list[float]] = {}
        unknown: list[str] = []
        for key, cpu in seen.items():
            name = names.get(self._ti.get(key, ""), "unknown")
            if name == "unknown":
                unknown.append(self._ti.get(key, ""))
            totals.setdefault(name, [0, 0.0])
            totals[name][0] += 1
            totals[name][1] += cpu
        out: dict[str, dict] = {
            name: {"processes": round(n / handled, 2), "cpu_s": round(c / handled, 3)}
            for name, (n, c) in sorted(totals.items(), key=lambda kv: -kv[1][1])
        }
        if unknown:
            out["unknown"]["titles"] = sorted(set(unknown))[:10]  # what to look for when this shows
        return out


class CPUMeter:
    """The stack's CPU seconds over a phase, above its idle rate.

    `idle(seconds)` samples the stack doing nothing (scheduler loops, DAG parsing, the API server)
    for that long; `start()` and `stop(handled)` bracket the phase. The result:
    {"total_s", "idle_rate_s_per_s", "phase_s", "above_idle_s", "per_handled_failure_s"}.
    """

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.idle_rate: float | None = None
        self._t0: float | None = None
        self._c0: float | None = None

    def idle(self, seconds: float) -> None:
        c0, t0 = stack_cpu_seconds(self.cfg), time.monotonic()
        time.sleep(seconds)
        c1, t1 = stack_cpu_seconds(self.cfg), time.monotonic()
        self.idle_rate = None if c0 is None or c1 is None else max(0.0, (c1 - c0) / (t1 - t0))

    def start(self) -> None:
        self._c0, self._t0 = stack_cpu_seconds(self.cfg), time.monotonic()

    def stop(self, handled: int) -> dict:
        c1, t1 = stack_cpu_seconds(self.cfg), time.monotonic()
        if self._c0 is None or c1 is None or self._t0 is None:
            return {}
        total, seconds = c1 - self._c0, t1 - self._t0
        above = total - (self.idle_rate or 0.0) * seconds
        return {
            "total_s": round(total, 1),
            "idle_rate_s_per_s": None if self.idle_rate is None else round(self.idle_rate, 3),
            "phase_s": round(seconds, 1),
            "above_idle_s": round(above, 1),
            "per_handled_failure_s": round(above / handled, 2) if handled else None,
        }


# -- the phases ---------------------------------------------------------------------------------


class Stack:
    """One phase's stack on a temporary state folder and free ports; `start` may run in the background.

    Args:
        name: the phase, for messages and the folder's prefix.
        llm_base_url, extra_env: see StackConfig.
        keep_logs: a folder to copy the stack's state (logs, task logs; not Postgres) into at `stop`.
    """

    def __init__(
        self,
        name: str,
        llm_base_url: str | None = None,
        extra_env: dict | None = None,
        keep_logs: Path | None = None,
    ) -> None:
        self.name = name
        self.keep_logs = keep_logs
        self._tmp = tempfile.TemporaryDirectory(prefix=f"bench-mttr-{name}-")
        self.cfg = new_stack(Path(self._tmp.name), llm_base_url, extra_env)
        self.startup_s: float | None = None
        self._thread = None
        self._error: BaseException | None = None

    def start(self, background: bool = False) -> None:
        """`up` the stack, now or in a thread (`wait_up` joins it)."""
        import threading

        from scripts.stack import up

        def run() -> None:
            print(f"\n[{self.name}] starting the stack in {self.cfg.state_dir} ...", flush=True)
            try:
                self.startup_s = up(self.cfg)["startup_seconds"]
                print(f"[{self.name}] stack up in {self.startup_s}s", flush=True)
            except BaseException as exc:  # noqa: BLE001 - re-raised by wait_up
                self._error = exc

        if self._thread is None:
            self._thread = threading.Thread(target=run, name=f"up-{self.name}", daemon=True)
            self._thread.start()
        if not background:
            self.wait_up()

    def wait_up(self) -> None:
        """Wait for `start`; re-raise what `up` raised."""
        if self._thread is None:
            self.start()
        self._thread.join()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """`down` the stack (also half-started), copy its logs to `keep_logs`/name if asked, delete
        its folder."""
        import shutil

        from scripts.stack import down

        if self._thread is not None:
            self._thread.join()
        try:
            down(self.cfg)
            if self.keep_logs:
                shutil.copytree(
                    self.cfg.state_dir,
                    self.keep_logs / self.name,
                    ignore=shutil.ignore_patterns("pgdata", "*.sock"),
                    dirs_exist_ok=True,
                )
        finally:
            self._tmp.cleanup()


def run_phase(stack: Stack, failures: list[dict], args) -> tuple:
    """Drive the failures on a started stack, alone, and gather the records.

    Returns:
        (doctor records, baseline records, doctor DAG runs created during the phase,
        {"mean", "max"} of the machine's 1-minute load average meanwhile, the stack's CPU
        (`CPUMeter.stop`: per handled failure above the idle rate measured for `args.idle` s first)).
    """
    from datetime import UTC

    from scripts.demo import api_for

    stack.wait_up()
    meter = CPUMeter(stack.cfg)
    meter.idle(args.idle)
    since = datetime.now(UTC)
    print(f"[{stack.name}] {len(failures)} failures planned", flush=True)
    meter.start()
    with TaskCPUSampler(cfg=stack.cfg) as tasks:
        load = drive(stack.cfg, failures, args.timeout, BASELINE_RETRY_DELAY_S + args.timeout)
        try:  # the last doctor runs' report_retry and summarize_run end after their retries did
            doctor_idle(api_for(stack.cfg), timeout=120)
        except TimeoutError as exc:
            print(f"  ({exc}: the task processes' figures may miss their last tasks)", flush=True)
    cpu = meter.stop(len(failures)) | tasks.figures(len(failures), stack.cfg)
    doctor = doctor_records(stack.cfg, [f for f in failures if not f["baseline"]])
    baseline = baseline_records(stack.cfg, [f for f in failures if f["baseline"]])
    runs = doctor_run_count(stack.cfg, since) if doctor else None
    return doctor, baseline, runs, {"mean": round(sum(load) / len(load), 1), "max": round(max(load), 1)}, cpu


def escalation_records(cfg, n: int, spacing: float, timeout: float) -> list[dict]:
    """N permanent failures (example_orders_report: KeyError on every try), one every `spacing` s,
    on a started stack; for each, the seconds from the failure (the inbox's failed_at: the task
    runner's end of the try) to the escalation's email at the SMTP sink and its Slack message at the
    webhook sink (each sink stamps `received_at` when a message arrives).

    Returns:
        [{"run_id", "email_s": float | None, "slack_s": float | None}] (None: not received within
        `timeout` s of the last trigger).
    """
    from scripts.demo import api_for, kb_for, sink_messages, trigger, wait_for_dags

    api, kb = api_for(cfg), kb_for(cfg)
    wait_for_dags(api, [PERMANENT_DAG], timeout=180)
    t0, runs = time.monotonic(), []
    for i in range(n):
        time.sleep(max(0.0, t0 + i * spacing - time.monotonic()))
        runs.append(trigger(api, PERMANENT_DAG))
        print(f"  {time.monotonic() - t0:6.1f}s  triggered {PERMANENT_DAG} ({runs[-1]})", flush=True)
    deadline = time.monotonic() + timeout
    out: dict[str, dict] = {}
    while time.monotonic() < deadline:
        failed = {c["run_id"]: c.get("failed_at") for c in kb.case_report(PERMANENT_DAG)}
        mails, posts = sink_messages(cfg)
        for run in runs:
            failed_at = _ts(failed.get(run))
            mail = next(
                (m for m in mails if "escalated" in m.get("subject", "") and run in m.get("text", "")), None
            )
            post = next((p for p in posts if run in json.dumps(p.get("body"))), None)
            out[run] = {
                "run_id": run,
                "email_s": round(mail["received_at"] - failed_at.timestamp(), 1)
                if mail and failed_at
                else None,
                "slack_s": round(post["received_at"] - failed_at.timestamp(), 1)
                if post and failed_at
                else None,
            }
        if all(r["email_s"] is not None and r["slack_s"] is not None for r in out.values()):
            break
        time.sleep(2)
    return [out.get(run, {"run_id": run, "email_s": None, "slack_s": None}) for run in runs]


def doctor_commit() -> str | None:
    """The short commit id of the checkout measured, "+" appended when its doctor code (the package,
    the DAG files, the SQL) differs from that commit; None outside a git checkout."""
    import subprocess

    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "airflow_doctor", "dags", "include"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+" if dirty else "")


def doctor_code_digest() -> str:
    """A short hash of the doctor's code (the airflow_doctor package, the DAG files, the SQL and
    prompts): which doctor was measured."""
    import hashlib

    digest = hashlib.sha256()
    paths = [
        *sorted((ROOT / "airflow_doctor").rglob("*.py")),
        *sorted((ROOT / "dags").glob("*.py")),
        *sorted((ROOT / "include").rglob("*.sql")),
        *sorted((ROOT / "include" / "prompts").glob("*")),
    ]
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def measure_once(args, phases: list[str], kinds: list[str], backoff: float, *, baseline: bool) -> dict:
    """One repeat: the offline stack (offline, then escalation, then baseline if asked), stopped; then
    the LLM stack. Each phase alone.

    Returns:
        {"phases": {phase: summary}, "records": {phase: [record]}}.
    """
    from scripts.demo import api_for

    out: dict = {"phases": {}, "records": {}}
    if any(p in phases for p in ("offline", "escalation")) or baseline:
        offline = Stack("offline", keep_logs=args.keep_logs)
        try:
            offline.start()
            if "offline" in phases:
                doctor, _, runs, load, cpu = run_phase(
                    offline, plan(kinds, args.n, args.spacing, "example"), args
                )
                out["records"]["offline"] = doctor
                out["phases"]["offline"] = {
                    **summarize(doctor, DOCTOR_MILESTONES, backoff),
                    "stack_startup_s": offline.startup_s,
                    "doctor_runs_created": runs,
                    "load_1m": load,
                    "cpu": cpu,
                }
            if "escalation" in phases:
                print(
                    f"[offline] {args.escalations} permanent failures for the escalation figure", flush=True
                )
                meter = CPUMeter(offline.cfg)
                meter.idle(args.idle)
                meter.start()
                load_before = os.getloadavg()[0]
                with TaskCPUSampler(cfg=offline.cfg) as tasks:
                    escalations = escalation_records(
                        offline.cfg, args.escalations, args.spacing, args.timeout
                    )
                    try:
                        doctor_idle(api_for(offline.cfg), timeout=120)
                    except TimeoutError as exc:
                        print(f"  ({exc}: the task processes' figures may miss their last tasks)", flush=True)
                out["phases"]["escalation"] = {
                    "email": stats([r["email_s"] for r in escalations]),
                    "slack": stats([r["slack_s"] for r in escalations]),
                    "cpu": meter.stop(len(escalations)) | tasks.figures(len(escalations), offline.cfg),
                    "load_1m": {"mean": round((load_before + os.getloadavg()[0]) / 2, 1)},
                    "records": escalations,
                }
            if baseline:
                _, records, _, load, cpu = run_phase(
                    offline, plan(kinds, args.n, args.spacing, "baseline"), args
                )
                out["records"]["baseline"] = records
                out["phases"]["baseline"] = {
                    **summarize(records, BASELINE_MILESTONES, backoff),
                    "load_1m": load,
                    "cpu": cpu,
                }
        finally:
            offline.stop()
    if "llm" in phases:
        from tests.fakes.anthropic_server import AnthropicLoopback

        with AnthropicLoopback() as server:
            server.script(llm_answer(args.llm_delay))
            llm_stack = Stack(
                "llm", server.base_url, {"AIRFLOW__DOCTOR__MEMORY_FIRST": "False"}, args.keep_logs
            )
            try:
                llm_stack.start()
                doctor, _, runs, load, cpu = run_phase(
                    llm_stack, plan(kinds, args.n, args.spacing, "example"), args
                )
                out["records"]["llm"] = doctor
                out["phases"]["llm"] = {
                    **summarize(doctor, DOCTOR_MILESTONES, backoff),
                    "stack_startup_s": llm_stack.startup_s,
                    "doctor_runs_created": runs,
                    "llm_requests": len(server.requests),
                    "load_1m": load,
                    "cpu": cpu,
                }
            finally:
                llm_stack.stop()
    return out


def _median(values: list[float]) -> float | None:
    got = sorted(v for v in values if v is not None)
    return round(percentile(got, 50), 1) if got else None


def _median2(values: list[float | None]) -> float | None:
    """The median of the values given (None left out), to 2 decimals; None for none."""
    got = sorted(v for v in values if v is not None)
    return round(percentile(got, 50), 2) if got else None


def across(repeats: list[dict]) -> dict:
    """The repeats' figures side by side: for each phase and milestone, the median of the repeats'
    p50 (and p95) with the spread (min, max) of their p50; the same for the CPU per handled failure
    and the load.

    Returns:
        {phase: {"milestones": {m: {"p50_median", "p50_min", "p50_max", "p95_median"}},
        "cpu_per_handled_failure_s": {"median", "min", "max"}, "load_1m_mean": {...}, "repeats": n}}.
    """
    out: dict = {}
    names = sorted({p for r in repeats for p in r["phases"]})
    for phase in names:
        got = [r["phases"][phase] for r in repeats if phase in r["phases"]]

        def spread(values: list[float | None], median=_median) -> dict:
            vals = [v for v in values if v is not None]
            return {"median": median(vals), "min": min(vals, default=None), "max": max(vals, default=None)}

        entry: dict = {"repeats": len(got)}
        if phase == "escalation":
            for channel in ("email", "slack"):
                entry[channel] = spread([g[channel]["p50"] for g in got])
        else:
            entry["milestones"] = {}
            for m in got[0]["milestones"]:
                p50s = [g["milestones"][m]["p50"] for g in got]
                s50 = spread(p50s)
                entry["milestones"][m] = {
                    "p50_median": s50["median"],
                    "p50_min": s50["min"],
                    "p50_max": s50["max"],
                    "p95_median": _median([g["milestones"][m]["p95"] for g in got]),
                }
            entry["healed"] = [g["healed"] for g in got]
            entry["failures"] = [g["failures"] for g in got]
        for key, field in (
            ("task_cpu_per_handled_failure_s", "task_cpu_per_handled_failure_s"),
            ("task_processes_per_handled_failure", "task_processes_per_handled_failure"),
            ("supervisor_cpu_per_handled_failure_s", "supervisor_cpu_per_handled_failure_s"),
            ("cpu_per_handled_failure_s", "per_handled_failure_s"),
        ):
            entry[key] = spread([(g.get("cpu") or {}).get(field) for g in got], _median2)
        tasks = sorted({t for g in got for t in ((g.get("cpu") or {}).get("by_task") or {})})
        entry["by_task"] = {
            t: {
                f: _median2([(((g.get("cpu") or {}).get("by_task") or {}).get(t) or {}).get(f) for g in got])
                for f in ("processes", "cpu_s")
            }
            for t in tasks
        }
        entry["load_1m_mean"] = spread([(g.get("load_1m") or {}).get("mean") for g in got])
        out[phase] = entry
    return out


def main() -> int:
    from airflow_doctor.settings import settings as load_settings
    from dags.examples.example_transient_failures import TRANSIENT_KINDS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="failures per phase")
    parser.add_argument("--spacing", type=float, default=7.0, help="seconds between two failures")
    parser.add_argument(
        "--phases",
        default="offline,escalation,llm",
        help="comma-separated subset of offline, escalation, llm, baseline",
    )
    parser.add_argument(
        "--escalations", type=int, default=10, help="permanent failures for the escalation figure"
    )
    parser.add_argument("--llm-delay", type=float, default=2.0, help="the loopback LLM's answer time, s")
    parser.add_argument("--timeout", type=float, default=240.0, help="s a failure may take to settle")
    parser.add_argument("--repeat", type=int, default=3, help="how many times to measure everything")
    parser.add_argument("--idle", type=float, default=15.0, help="s of idle stack sampled before each phase")
    parser.add_argument("--keep-logs", type=Path, help="copy each stack's logs (Airflow's, tasks') here")
    parser.add_argument(
        "--name",
        default="mttr",
        help="results file bench/results/<name>.json (another name keeps a variant run apart)",
    )
    args = parser.parse_args()
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    kinds = list(TRANSIENT_KINDS)
    # The stacks inherit this environment: AIRFLOW__DOCTOR__RETRY_BACKOFF_SECONDS set here is the
    # doctor's backoff in them too, as it is in this process's settings.
    backoff = load_settings().retry_backoff_seconds
    t_start = time.monotonic()
    result: dict = {
        **header(
            f"python -m bench.mttr --n {args.n} --spacing {args.spacing:g} --phases {args.phases} "
            f"--repeat {args.repeat}",
            DEMO_FILE,
        ),
        "machine": machine(),
        "n": args.n,
        "spacing_s": args.spacing,
        "llm_delay_s": args.llm_delay,
        "baseline_retry_delay_s": BASELINE_RETRY_DELAY_S,
        "retry_backoff_seconds": backoff,
        "repeat": args.repeat,
        "goal": GOAL,
        "doctor_code": doctor_code_digest(),
        "commit": doctor_commit(),
    }
    repeats = []
    for i in range(args.repeat):
        print(f"\n=== repeat {i + 1} of {args.repeat} ===", flush=True)
        once = measure_once(args, phases, kinds, backoff, baseline="baseline" in phases and i == 0)
        for name, phase in once["phases"].items():
            phase.setdefault("records", once["records"].get(name))
        repeats.append(once)
        print_report({**result, "phases": once["phases"], "wall_clock_s": time.monotonic() - t_start})
    result["wall_clock_s"] = round(time.monotonic() - t_start, 1)
    result["summary"] = across(repeats)
    # The detailed tables show the repeat whose offline p50 is the median one.
    order = sorted(
        range(len(repeats)),
        key=lambda i: (
            repeats[i]["phases"].get("offline", {}).get("milestones", {}).get("running", {}).get("p50") or 0
        ),
    )
    result["phases"] = repeats[order[len(order) // 2]]["phases"] if repeats else {}
    # Each repeat's figures; the records (one per failure) only of the repeat shown in "phases".
    result["repeats"] = [
        {name: {k: v for k, v in phase.items() if k != "records"} for name, phase in r["phases"].items()}
        for r in repeats
    ]
    if doctor_code_digest() != result["doctor_code"]:
        result["doctor_code_changed_during_run"] = True
        print(
            "WARNING: the doctor's code changed during the run; the phases may have measured different code"
        )
    write_result(args.name, result)
    print_summary(result)
    return 0


# -- printing -----------------------------------------------------------------------------------

PHASE_TITLES = {
    "offline": "doctor offline",
    "llm": "doctor + LLM",
    "baseline": "Airflow retry",
    "escalation": "escalation",
}


def _cell(s: dict | None) -> str:
    if not s or not s["n"]:
        return "-"
    return f"{s['p50']:.1f} / {s['p95']:.1f} / {s['max']:.1f}"


def print_report(result: dict) -> None:
    phases = [p for p in ("offline", "llm", "baseline") if p in result["phases"]]
    data = result["phases"]
    titles = []
    for p in phases:
        title = PHASE_TITLES[p] + (f" {result['llm_delay_s']:g} s" if p == "llm" else "")
        titles.append(f"{title} ({data[p]['healed']}/{data[p]['failures']})")
    width = 26
    print(
        f"\nTime to heal: seconds after the failure, p50 / p95 / max (healed/failures)   N={result['n']}, "
        f"one failure every {result['spacing_s']:g} s"
    )
    print(f"{'milestone':<24}" + "".join(f"{t:>{width}}" for t in titles))
    for m, label in DOCTOR_MILESTONES.items():
        print(f"{label:<24}" + "".join(f"{_cell(data[p]['milestones'].get(m)):>{width}}" for p in phases))
    print("\nWhere the seconds go: gap between consecutive milestones, p50 / p95 / max")
    gap_names = list(data[phases[0]]["gaps"]) if phases else []
    for p in phases:
        for g in data[p]["gaps"]:
            if g not in gap_names:
                gap_names.append(g)
    for g in gap_names:
        print(f"{g:<24}" + "".join(f"{_cell(data[p]['gaps'].get(g)):>{width}}" for p in phases))
    for p in phases:
        d = data[p]
        if "doctor_tasks" in d:
            print(
                f"\n{PHASE_TITLES[p]}: doctor tasks, p50 s after the failure "
                f"(diagnosis done = end of {', '.join(d['diagnose_task']) or '?'})"
            )
            print(f"  {'task':<40}{'queued':>8}{'start':>8}{'end':>8}{'ran':>8}")
            fmt = lambda x: "-" if x is None else f"{x:.1f}"  # noqa: E731
            for task_id, t in d["doctor_tasks"].items():
                print(
                    f"  {task_id:<40}{fmt(t.get('queued')):>8}{fmt(t.get('start')):>8}{fmt(t.get('end')):>8}"
                    f"{fmt(t.get('duration')):>8}"
                )
            runs = d["doctor_runs"]
            print(
                f"  doctor runs: {d.get('doctor_runs_created')} created, {runs['runs_with_failures']} "
                f"handled failures; failures per run {runs['failures_per_run']} "
                f"(mean {runs['mean_failures_per_run']})"
            )
            for action, a in d["actions"].items():
                print(
                    f"  action {action}: {a['n']} failures, backoff {a['backoff_s']:g} s before the clear "
                    f"({', '.join(a['dags'])})"
                )
            if "llm_call_s" in d:
                print(
                    f"  LLM call (loopback, {result['llm_delay_s']:g} s answer): {_cell(d['llm_call_s'])} s; "
                    f"{d.get('llm_requests')} requests"
                )
        for miss in d["not_healed"]:
            print(f"  NOT HEALED ({PHASE_TITLES[p]}) {miss['dag_id']} {miss['run_id']}: {miss['why']}")
    for p in ("offline", "llm"):
        if p in data:
            running, goal = data[p]["milestones"]["running"], GOAL[p]
            ok = bool(running["n"]) and all(
                running[q] <= goal[f"running_{q}_s"] for q in ("p50", "p95") if f"running_{q}_s" in goal
            )
            print(
                "goal (failure -> retried try running "
                + ", ".join(
                    f"{q} <= {goal[f'running_{q}_s']:g} s" for q in ("p50", "p95") if f"running_{q}_s" in goal
                )
                + f"), {PHASE_TITLES[p]}: {'met' if ok else 'missed'} ({_cell(running)})"
            )
    if "escalation" in data:
        e = data["escalation"]
        ok = bool(e["email"]["n"]) and e["email"]["p50"] <= GOAL["escalation_email_p50_s"]
        print(
            f"failure -> escalation received, p50 / p95 / max (n={e['email']['n']}): "
            f"email {_cell(e['email'])}, "
            f"Slack {_cell(e['slack'])}; goal email p50 <= {GOAL['escalation_email_p50_s']:g} s: "
            f"{'met' if ok else 'missed'}"
        )
    cpus = ", ".join(
        f"{PHASE_TITLES.get(p, p)} {d['cpu']['per_handled_failure_s']} s (task processes: "
        f"{d['cpu'].get('task_processes_per_handled_failure')}, "
        f"{d['cpu'].get('task_cpu_per_handled_failure_s')} s)"
        for p, d in data.items()
        if (d.get("cpu") or {}).get("per_handled_failure_s") is not None
    )
    if cpus:
        print(f"stack CPU per handled failure, above its idle rate: {cpus}")
    loads = ", ".join(
        f"{PHASE_TITLES[p]} mean {data[p]['load_1m']['mean']:g} max {data[p]['load_1m']['max']:g}"
        for p in phases
        if data[p].get("load_1m")
    )
    print(f"machine load (1-min load average, {os.cpu_count()} cores) during each phase: {loads}")
    print(f"wall clock {result['wall_clock_s']:.0f} s")


def print_summary(result: dict) -> None:
    """The repeats side by side: median p50 (min-max of the repeats' p50) per milestone and phase."""
    summary = result["summary"]
    phases = [p for p in ("offline", "llm", "baseline") if p in summary]
    width = 28

    def cell(m: dict | None) -> str:
        if not m or m.get("p50_median") is None:
            return "-"
        return f"{m['p50_median']:.1f} ({m['p50_min']:.1f}-{m['p50_max']:.1f})"

    print(f"\nMedian of {result['repeat']} repeat(s): p50 s after the failure (min-max of the repeats' p50)")
    print(f"{'milestone':<24}" + "".join(f"{PHASE_TITLES[p]:>{width}}" for p in phases))
    for m, label in DOCTOR_MILESTONES.items():
        print(f"{label:<24}" + "".join(f"{cell(summary[p]['milestones'].get(m)):>{width}}" for p in phases))
    for p in [*phases, "escalation"]:
        if p in summary:
            c, t = summary[p]["cpu_per_handled_failure_s"], summary[p]["task_cpu_per_handled_failure_s"]
            print(
                f"{PHASE_TITLES[p]}: per handled failure, task processes' CPU {t['median']} s "
                f"({t['min']}-{t['max']}), the stack's above idle {c['median']} s ({c['min']}-{c['max']})"
            )
    if "escalation" in summary:
        e = summary["escalation"]["email"]
        print(f"escalation email p50: {e['median']} s ({e['min']}-{e['max']})")


if __name__ == "__main__":
    raise SystemExit(main())

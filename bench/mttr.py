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
- baseline: in the offline stack, N runs of the `baseline_transient_*` twins (retries=1, Airflow's
  default retry_delay of 300 s, tagged doctor:off), triggered before the doctor's failures so their
  300 s wait overlaps the offline phase. Failure = end of try 1 (the API's end_date; the doctor
  phases use the task runner's failed_at from the inbox, a few ms earlier).
- llm: a stack whose `doctor_llm` points at the loopback Messages API server
  (tests/fakes/anthropic_server.py) answering every call after a fixed `--llm-delay` s with a valid
  `record_diagnosis` call: transient, confidence 0.9, the excerpt's exception line as evidence, and
  the class and action the offline rules give that line (so both doctor phases pay the same
  backoffs). [doctor] memory_first is off there, so every diagnosis asks the LLM. The stack
  starts in the background once only the baseline's retries are left to wait for (its start then
  competes with those retries for the CPU, not with any doctor measurement).
- escalation: in the offline stack after its failures, `--escalations` permanent failures
  (example_orders_report, KeyError), one every `--spacing` s: seconds from the failure to the
  escalation's email at the SMTP sink and its Slack message at the webhook sink.
A failure that has not settled `--timeout` s after its trigger (baseline: 300 s more) is reported
as not healed, with the doctor task it was still in.

Usage: python -m bench.mttr [--n 20] [--spacing 7] [--phases offline,baseline,llm,escalation]
       [--escalations 10] [--llm-delay 2]
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

from bench.common import ROOT, header, percentile, write_result

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


def drive(
    cfg, failures: list[dict], timeout: float, baseline_timeout: float, on_doctor_settled=None
) -> list[float]:
    """Trigger every planned failure at its time, then wait until each has settled.

    Settled: the retried try ended, or the doctor recorded that it will not retry. A failure gets
    `timeout` s (baseline: `baseline_timeout` s) after its trigger. Adds "run_id" and "triggered_at"
    (and "timed_out" when it did not settle) to each failure dict, in place. `on_doctor_settled()`
    is called once, when only baseline failures are left.

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
        if on_doctor_settled and all(f["baseline"] for f in still):
            on_doctor_settled()
            on_doctor_settled = None
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
    from scripts.demo import api_for

    try:
        resp = api_for(cfg).call(
            "DagRunApi", lambda a: a.get_dag_runs("doctor", run_after_gte=since, limit=1000)
        )
        return len(resp.dag_runs)
    except Exception:  # noqa: BLE001
        return None


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


def run_phase(stack: Stack, failures: list[dict], args, on_doctor_settled=None) -> tuple:
    """Drive the failures on a started stack and gather the records.

    Returns:
        (doctor records, baseline records, doctor DAG runs created during the phase,
        {"mean", "max"} of the machine's 1-minute load average meanwhile).
    """
    from datetime import UTC

    stack.wait_up()
    since = datetime.now(UTC)
    print(f"[{stack.name}] {len(failures)} failures planned", flush=True)
    load = drive(stack.cfg, failures, args.timeout, BASELINE_RETRY_DELAY_S + args.timeout, on_doctor_settled)
    doctor = doctor_records(stack.cfg, [f for f in failures if not f["baseline"]])
    baseline = baseline_records(stack.cfg, [f for f in failures if f["baseline"]])
    runs = doctor_run_count(stack.cfg, since) if doctor else None
    return doctor, baseline, runs, {"mean": round(sum(load) / len(load), 1), "max": round(max(load), 1)}


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


def doctor_code_digest() -> str:
    """A short hash of the doctor's code (dags/doctor.py, airflow_doctor/): which doctor was measured."""
    import hashlib

    digest = hashlib.sha256()
    for path in [ROOT / "dags" / "doctor.py", *sorted((ROOT / "include" / "doctor").glob("*.py"))]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def main() -> int:
    from airflow_doctor.settings import settings as load_settings
    from dags.examples.example_transient_failures import TRANSIENT_KINDS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="failures per phase")
    parser.add_argument("--spacing", type=float, default=7.0, help="seconds between two failures")
    parser.add_argument(
        "--phases",
        default="offline,baseline,llm,escalation",
        help="comma-separated subset (escalation needs offline)",
    )
    parser.add_argument(
        "--escalations", type=int, default=10, help="permanent failures for the escalation figure"
    )
    parser.add_argument("--llm-delay", type=float, default=2.0, help="the loopback LLM's answer time, s")
    parser.add_argument("--timeout", type=float, default=240.0, help="s a failure may take to settle")
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
            f"python -m bench.mttr --n {args.n} --spacing {args.spacing:g} --phases {args.phases}", DEMO_FILE
        ),
        "n": args.n,
        "spacing_s": args.spacing,
        "llm_delay_s": args.llm_delay,
        "baseline_retry_delay_s": BASELINE_RETRY_DELAY_S,
        "retry_backoff_seconds": backoff,
        "goal": GOAL,
        "doctor_code": doctor_code_digest(),
        "phases": {},
    }
    records: dict[str, list[dict]] = {}
    server = llm_stack = None
    try:
        if "llm" in phases:
            from tests.fakes.anthropic_server import AnthropicLoopback

            server = AnthropicLoopback().__enter__()
            server.script(llm_answer(args.llm_delay))
            llm_stack = Stack(
                "llm", server.base_url, {"AIRFLOW__DOCTOR__MEMORY_FIRST": "False"}, args.keep_logs
            )
        if "offline" in phases or "baseline" in phases:
            # Baseline twins first: their 300 s retry_delay then runs while the doctor heals the others,
            # and the LLM phase's stack starts once only baseline retries are left to wait for.
            failures = plan(kinds, args.n, args.spacing, "baseline") if "baseline" in phases else []
            start = (failures[-1]["at"] + args.spacing) if failures else 0.0
            if "offline" in phases:
                failures += plan(kinds, args.n, args.spacing, "example", start)
            offline = Stack("offline", keep_logs=args.keep_logs)
            try:
                offline.start()
                early = (lambda: llm_stack.start(background=True)) if llm_stack else None
                doctor, baseline, runs, load = run_phase(offline, failures, args, on_doctor_settled=early)
                if "escalation" in phases:
                    print(
                        f"[offline] {args.escalations} permanent failures for the escalation figure",
                        flush=True,
                    )
                    escalations = escalation_records(
                        offline.cfg, args.escalations, args.spacing, args.timeout
                    )
                    result["phases"]["escalation"] = {
                        "email": stats([r["email_s"] for r in escalations]),
                        "slack": stats([r["slack_s"] for r in escalations]),
                        "records": escalations,
                    }
            finally:
                offline.stop()
            if "offline" in phases:
                records["offline"] = doctor
                result["phases"]["offline"] = {
                    **summarize(doctor, DOCTOR_MILESTONES, backoff),
                    "stack_startup_s": offline.startup_s,
                    "doctor_runs_created": runs,
                    "load_1m": load,
                }
            if "baseline" in phases:
                records["baseline"] = baseline
                result["phases"]["baseline"] = {
                    **summarize(baseline, BASELINE_MILESTONES, backoff),
                    "load_1m": load,
                }
        if llm_stack:
            doctor, _, runs, load = run_phase(llm_stack, plan(kinds, args.n, args.spacing, "example"), args)
            records["llm"] = doctor
            result["phases"]["llm"] = {
                **summarize(doctor, DOCTOR_MILESTONES, backoff),
                "stack_startup_s": llm_stack.startup_s,
                "doctor_runs_created": runs,
                "llm_requests": len(server.requests),
                "load_1m": load,
            }
    finally:
        if llm_stack:
            llm_stack.stop()
        if server:
            server.__exit__(None, None, None)
    result["wall_clock_s"] = round(time.monotonic() - t_start, 1)
    if doctor_code_digest() != result["doctor_code"]:
        result["doctor_code_changed_during_run"] = True
        print(
            "WARNING: the doctor's code changed during the run; the phases may have measured different code"
        )
    for name, phase in result["phases"].items():
        phase.setdefault("records", records.get(name))
    write_result(args.name, result)
    print_report(result)
    return 0


# -- printing -----------------------------------------------------------------------------------

PHASE_TITLES = {"offline": "doctor offline", "llm": "doctor + LLM", "baseline": "Airflow retry"}


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
    loads = ", ".join(
        f"{PHASE_TITLES[p]} mean {data[p]['load_1m']['mean']:g} max {data[p]['load_1m']['max']:g}"
        for p in phases
        if data[p].get("load_1m")
    )
    print(f"machine load (1-min load average, {os.cpu_count()} cores) during each phase: {loads}")
    print(f"wall clock {result['wall_clock_s']:.0f} s")


if __name__ == "__main__":
    raise SystemExit(main())

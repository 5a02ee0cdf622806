"""What a person sees in the Graph view of a doctor run: each stage's task state for one failure."""

from __future__ import annotations

from urllib.parse import quote

from scripts.demo import wait_until

# The run's unmapped tasks: fetch_logs claims the failures and reads their logs (no separate
# collect task stands before it), summarize_run writes the run's note.
RUN_TASKS = ("fetch_logs", "summarize_run")
# Every task of the mapped `handle_failures` group (dags/doctor.py), in the card's order.
STAGES = (
    "embed_failure",
    "retrieve_similar",
    "diagnose",
    "gate_on_confidence",
    "clear_and_retry",
    "prepare_approval",
    "request_approval",
    "act_on_approval",
    "escalate",
    "notify_humans",
    "record_case",
    "verify_retry",
    "report_retry",
)
DONE = {"success", "failed", "skipped", "upstream_failed", "removed"}


def _task_instances(api, doctor_run_id: str) -> list[dict]:
    path = f"/api/v2/dags/doctor/dagRuns/{quote(doctor_run_id, safe='')}/taskInstances?limit=1000"
    return api.request_json("GET", path)["task_instances"]


def run_task_states(api, doctor_run_id: str) -> dict[str, str | None]:
    """{task_id: state} of the run's unmapped tasks (every task outside handle_failures)."""
    return {t["task_id"]: t["state"] for t in _task_instances(api, doctor_run_id) if "." not in t["task_id"]}


def stages_run_on_a_worker(api, doctor_run_id: str, label: str) -> set[str]:
    """The stages of the instance labelled `label` that started a task process (they have a host
    name); a branch the gate did not take is skipped before it starts one."""
    tis = _task_instances(api, doctor_run_id)
    index = next(t["map_index"] for t in tis if t["map_index"] >= 0 and t.get("rendered_map_index") == label)
    return {
        t["task_id"].split(".", 1)[1]
        for t in tis
        if t["map_index"] == index and "." in t["task_id"] and t.get("hostname")
    }


def stage_states(api, doctor_run_id: str, label: str) -> dict[str, str | None]:
    """{stage: state} of the mapped instance labelled `label` (its rendered map index) in one run."""
    tis = _task_instances(api, doctor_run_id)
    index = next(
        (t["map_index"] for t in tis if t["map_index"] >= 0 and t.get("rendered_map_index") == label), None
    )
    assert index is not None, f"no mapped instance labelled {label!r} in doctor run {doctor_run_id}"
    states = {
        t["task_id"].split(".", 1)[1]: t["state"]
        for t in tis
        if t["map_index"] == index and "." in t["task_id"]
    }
    return {stage: states.get(stage) for stage in STAGES}


def settled_stage_states(api, doctor_run_id: str, label: str, timeout: float = 240) -> dict[str, str | None]:
    """stage_states once every stage has ended (the run's graph no longer changes)."""

    def settled():
        states = stage_states(api, doctor_run_id, label)
        return states if all(s in DONE for s in states.values()) else None

    return wait_until(settled, timeout, f"every stage of {label} in doctor run {doctor_run_id} to end")

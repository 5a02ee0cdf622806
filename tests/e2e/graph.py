"""What a person sees in the Graph view of a doctor run: each stage's task state for one failure."""

from __future__ import annotations

from urllib.parse import quote

from scripts.demo import wait_until

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


def stage_states(api, doctor_run_id: str, label: str) -> dict[str, str | None]:
    """{stage: state} of the mapped instance labelled `label` (its rendered map index) in one run."""
    path = f"/api/v2/dags/doctor/dagRuns/{quote(doctor_run_id, safe='')}/taskInstances?limit=1000"
    tis = api.request_json("GET", path)["task_instances"]
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

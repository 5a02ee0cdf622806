"""The confidence gate: the one place that decides whether the doctor may clear a task instance.

Auto-retry only when memory, judgement and policy all agree (DESIGN.md "Gate"); every rule that
fails is written into the Decision's reasons so a person can see why. Never raises.
"""

from __future__ import annotations

from include.doctor.config import TAG_NOTIFY_ONLY, TAG_OFF, DoctorSettings
from include.doctor.models import RETRY_ACTIONS, Action, Decision, Diagnosis, Neighbour

BACKOFF_CAP_SECONDS = 300.0


def decide(
    diagnosis: Diagnosis | None,
    neighbours: list[Neighbour],
    fingerprint_matches: list[Neighbour],
    doctor_clears: int | None,
    dag_tags: list[str] | None,
    settings: DoctorSettings,
    *,
    excerpt: dict | None = None,
    class_outcomes: dict | None = None,
) -> Decision:
    """Decide auto_retry, approval or escalate for one failure.

    Args:
        diagnosis: the diagnosis, or None when none could be made (never passes).
        neighbours: similar cases, most similar first.
        fingerprint_matches: earlier cases with the same fingerprint.
        doctor_clears: how many times the doctor already cleared this task instance; None when
            unknown (the knowledge base was unreachable), which fails closed.
        dag_tags: tags of the failed task's DAG; None when unknown, which fails closed.
        settings: thresholds and switches (Airflow Variables).
    Returns:
        Decision with verdict "auto_retry" only if (DESIGN.md "Gate")
        1. memory: the best neighbour is >= similarity_threshold and its retry was verified to
           succeed (a transient runbook entry counts), or a fingerprint match was; a case whose
           retry is still pending is not counted as a neighbour;
        2. judgement: transient, action retry/retry_with_backoff, confidence >= confidence_threshold;
        3. policy: doctor_clears < max_auto_retries, no doctor:off / doctor:notify-only tag, switch on.
        "approval" (the grey zone, when `approval_enabled`) when policy holds, the diagnosis says
        transient with a retry action, and memory or confidence fall short but stay above their
        floors: the most similar case with a verified retry is >= approval_similarity_floor and
        confidence >= approval_confidence_floor. Otherwise "escalate". `backoff_seconds` is the
        wait before a retry_with_backoff clear.
    """
    reasons: list[str] = []
    # A case whose doctor retry is still in flight (outcome pending) says nothing yet, either way:
    # skipping it keeps a second failure of the same kind, minutes after the first, from being
    # judged on the first one's unknown outcome instead of on the cases behind it.
    in_flight = [n for n in neighbours if n.kind == "observed" and n.outcome == "pending"]
    neighbours = [n for n in neighbours if n not in in_flight]
    best = neighbours[0] if neighbours else None
    similarity = best.similarity if best else None
    if in_flight:
        reasons.append(f"memory: {len(in_flight)} similar case(s) still being retried, not counted")

    # 1. memory
    verified_fp = [n for n in fingerprint_matches if n.retry_verified]
    verified_neighbours = [n for n in neighbours if n.retry_verified]
    best_verified = max((n.similarity for n in verified_neighbours), default=None)
    memory_ok = bool(verified_fp) or bool(
        best and best.similarity >= settings.similarity_threshold and best.retry_verified
    )
    if verified_fp:
        reasons.append(f"memory: same fingerprint as case {verified_fp[0].case_id}, whose retry is verified")
    elif memory_ok and best:
        reasons.append(
            f"memory: case {best.case_id} ({best.kind}, {best.error_class}) is {best.similarity:.2f} "
            f"similar and its retry is verified"
        )
    elif best is None:
        reasons.append("memory: no similar case in the knowledge base")
    elif best.similarity < settings.similarity_threshold:
        reasons.append(f"memory: best similarity {best.similarity:.2f} < {settings.similarity_threshold:.2f}")
    else:
        reasons.append(
            f"memory: most similar case {best.case_id} ({best.error_class}) has no verified successful retry"
        )

    # 2. judgement
    retry_shaped = bool(diagnosis and diagnosis.transient and diagnosis.recommended_action in RETRY_ACTIONS)
    judgement_ok = retry_shaped and diagnosis.confidence >= settings.confidence_threshold
    if diagnosis is None:
        reasons.append("judgement: no valid diagnosis")
    else:
        if not diagnosis.transient:
            reasons.append(f"judgement: {diagnosis.error_class} is not transient")
        if diagnosis.recommended_action not in RETRY_ACTIONS:
            reasons.append(f"judgement: recommended action is {diagnosis.recommended_action.value}")
        if diagnosis.confidence < settings.confidence_threshold:
            reasons.append(
                f"judgement: confidence {diagnosis.confidence:.2f} < {settings.confidence_threshold:.2f}"
            )
        if judgement_ok:
            reasons.append(
                f"judgement: {diagnosis.error_class} is transient "
                f"({diagnosis.recommended_action.value}, confidence {diagnosis.confidence:.2f})"
            )

    # 3. policy
    policy_ok = True
    if not settings.enabled:
        policy_ok = False
        reasons.append("policy: the doctor's global switch (Variable doctor_enabled) is off")
    if dag_tags is None:
        policy_ok = False
        reasons.append("policy: the DAG's tags could not be read")
    elif TAG_OFF in dag_tags or TAG_NOTIFY_ONLY in dag_tags:
        policy_ok = False
        reasons.append(f"policy: the DAG is tagged {TAG_OFF if TAG_OFF in dag_tags else TAG_NOTIFY_ONLY}")
    if doctor_clears is None:
        policy_ok = False
        reasons.append("policy: the retry budget could not be read from the knowledge base")
    elif doctor_clears >= settings.max_auto_retries:
        policy_ok = False
        reasons.append(
            f"policy: retry did not help: the doctor already cleared this task instance "
            f"{doctor_clears} time(s) (max_auto_retries={settings.max_auto_retries})"
        )

    if memory_ok and judgement_ok and policy_ok:
        verdict = "auto_retry"
    elif (
        settings.approval_enabled
        and policy_ok
        and retry_shaped
        and diagnosis.confidence >= settings.approval_confidence_floor
        and (memory_ok or (best_verified is not None and best_verified >= settings.approval_similarity_floor))
    ):
        verdict = "approval"
        reasons.append(
            "grey zone: a retry looks plausible but memory or confidence fall short; an engineer decides"
        )
    else:
        verdict = "escalate"

    backoff = 0.0
    if verdict != "escalate" and diagnosis and diagnosis.recommended_action == Action.retry_with_backoff:
        backoff = min(BACKOFF_CAP_SECONDS, settings.retry_backoff_seconds * (2 ** (doctor_clears or 0)))
    return Decision(
        verdict=verdict,
        reasons=reasons,
        similarity=similarity,
        memory_match=memory_ok,
        backoff_seconds=backoff,
    )


def gate_on_confidence(
    ref_data: dict, diagnosis_result: dict | None, memory: dict | None, *, api=None
) -> dict:
    """The gate_on_confidence stage: gathers tags, budget and settings, then `decide`.

    Fails closed: if the DAG's tags or the retry budget cannot be read, the verdict is escalate.

    Returns:
        a Decision as dict. Never raises.
    """
    import logging

    from include.doctor.config import settings as load_settings
    from include.doctor.models import FailureRef

    log = logging.getLogger(__name__)
    settings = load_settings()
    ref = FailureRef.model_validate(ref_data)
    memory = memory or {}
    diag_data = (diagnosis_result or {}).get("diagnosis")
    try:
        diagnosis = Diagnosis.model_validate(diag_data) if diag_data else None
    except Exception:  # noqa: BLE001 - an invalid diagnosis is no diagnosis
        diagnosis = None
    try:
        from include.doctor.airflow_api import AirflowAPI

        tags = (api or AirflowAPI()).get_dag_tags(ref.dag_id)
    except Exception as exc:  # noqa: BLE001 - unknown tags fail closed in decide()
        log.warning("Could not read tags of %s: %s", ref.dag_id, exc)
        tags = None
    decision = decide(
        diagnosis,
        [Neighbour.model_validate(n) for n in memory.get("neighbours", [])],
        [Neighbour.model_validate(n) for n in memory.get("fingerprint_matches", [])],
        memory.get("doctor_clears"),
        tags,
        settings,
    )
    return decision.model_dump(mode="json")

"""The confidence gate: the one place that decides whether the doctor may clear a task instance.

Three families of reasons, every one written into the Decision (docs/gate.md, the README's
gate table): memory, judgement and policy. Memory is evidence, not a precondition: a failure the
doctor has never seen is auto-retried when independent judges agree: the diagnosis says transient
with high confidence, the offline rules read the primary error as a class of the retry-safe
catalogue (catalogue.py; a check that does not depend on the LLM), and nothing contradicts it.
A reading of the rules whose surface transient and permanent failures share (catalogue.DISPUTED) is
one an independent diagnosis may settle, on a log that does not argue for a retry, once per task
instance (disputes.py). Never raises.
"""

from __future__ import annotations

from airflow_doctor.judgement.catalogue import is_retry_safe
from airflow_doctor.judgement.disputes import is_disputed, pleas
from airflow_doctor.judgement.rules import Rule, classify, permanent_causes
from airflow_doctor.knowledge.memory import Recall
from airflow_doctor.models import RETRY_ACTIONS, Action, Decision, Diagnosis, Neighbour
from airflow_doctor.settings import TAG_NOTIFY_ONLY, TAG_OFF, DoctorSettings

BACKOFF_CAP_SECONDS = 300.0
# Where the primary error may come from for the catalogue to vouch for it: the exception that failed
# the task (or its chain), the output a wrapper reports, the error line of a log without any
# exception (a lost worker), or Airflow's own audit record of what ended the try (a heartbeat
# timeout). Not a line merely logged before a generic re-raise (`context`).
AUTHORITATIVE_SOURCES = frozenset({"error_detail", "traceback", "wrapped_output", "log_line", "audit_log"})
# Sources where the primary error replaced a wrapper: the output's other errors are in `causes`.
WRAPPED_SOURCES = frozenset({"wrapped_output", "context"})


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
        excerpt: the failure's excerpt (as dict): the rules read its primary error. None means no
            rule evidence (the catalogue cannot vouch, no rule can veto).
        class_outcomes: {"retry_class", "succeeded", "failed"}: verified doctor retries of the
            catalogue class (KnowledgeBase.class_outcomes), or None when unknown.
    Returns:
        Decision with verdict "auto_retry" only if all hold:
        1. judgement: transient, action retry/retry_with_backoff, confidence >= confidence_threshold;
        2. agreement: memory verifies it (a fingerprint match whose retry is verified, or the best
           neighbour >= similarity_threshold with a verified retry; a transient runbook entry of a
           catalogue class counts, except for a log cut before the exception that failed the task
           (excerpt source `cut_off`), where only an observed verified retry of the same fingerprint
           does, and when the rules read the error as a transient class the catalogue leaves out
           (`connection_refused`), where only an observed verified retry does) or the
           rules put the primary error (from an authoritative source) in a retry-safe catalogue
           class, or an independent diagnosis (not the offline one) settles a disputed reading
           (`_settle`: confidence >= dispute_confidence, an authoritative source, a log that argues
           for nothing (disputes.pleas), the doctor's first clear of this task instance); and
           nothing contradicts it: no rule reading the primary error as permanent, unless settled
           (an observed case of the same fingerprint whose retry succeeded outweighs
           the rule), no person's "permanent" for this fingerprint, and (for an auto-retry; a person
           may still approve one) no same-fingerprint case among the newest five whose retry
           verifiably failed and no similar (>= similarity_threshold) case whose retry failed unless
           this fingerprint is known to heal;
        3. policy: doctor_clears < max_auto_retries, no doctor:off / doctor:notify-only tag,
           switch on, the catalogue class not demoted (more than demote_failed_share of at least
           demote_min_retries verified doctor retries failed).
        "approval" (the grey zone, when `approval_enabled`) when policy holds except a demotion,
        nothing contradicts, the diagnosis says transient with a retry action and confidence >=
        approval_confidence_floor, and memory or the catalogue back it (also the catalogue's reading
        of the error a cut-off log shows, the rules' reading of a transient class the catalogue leaves
        out, or the most similar case with a verified retry is >= approval_similarity_floor).
        Otherwise "escalate".
        `backoff_seconds` is the wait before a retry_with_backoff clear; `retry_class` the
        catalogue class, or the settled disputed reading's class, if any.
    """
    reasons: list[str] = []
    memory = Recall.of(neighbours, fingerprint_matches, settings.similarity_threshold)
    best = memory.best
    similarity = best.similarity if best else None
    if memory.in_flight:
        # A case whose doctor retry is still in flight says nothing yet, either way.
        reasons.append(f"memory: {len(memory.in_flight)} similar case(s) still being retried, not counted")

    # -- memory: evidence for, and against (airflow_doctor/knowledge/memory.py) ------------------------
    verified_fp = memory.verified_fingerprint
    memory_ok = memory.vouches
    # A log cut before the exception that failed the task shows only an error that was being handled
    # when that one was raised: a runbook entry (knowledge of an error class) cannot vouch for an
    # error the log does not show; only this deployment's verified retry of the same fingerprint can.
    cut_off = (excerpt or {}).get("source") == "cut_off"
    if cut_off and memory_ok and not any(n.kind == "observed" for n in verified_fp):
        memory_ok = False
    # The rules' reading, needed by memory below: a transient class the catalogue leaves out
    # (`connection_refused` on a port that is not the protocol's standard one) is one only this
    # deployment's observed retries can vouch for; a runbook entry, which knows classes and not this
    # deployment's hosts and ports, cannot.
    rule = classify(excerpt, local_services=settings.local_services) if excerpt else None
    uncatalogued = rule is not None and rule.transient and not is_retry_safe(rule.error_class)
    settled, dispute_reason = _settle(rule, diagnosis, excerpt, doctor_clears, settings)
    runbook_only = memory_ok and not memory.vouches_by_observation
    if uncatalogued and runbook_only:
        memory_ok = False
    best_verified = memory.best_verified_similarity
    failed_retries = memory.failed_retries
    said_permanent = memory.said_permanent
    if said_permanent:
        pass  # the reason below says why memory does not vouch
    elif cut_off and memory.vouches and not memory_ok:
        n = verified_fp[0] if verified_fp else best
        reasons.append(
            f"memory: case {n.case_id} ({n.kind}, {n.error_class}) vouches for the error the log shows, "
            f"but the log was cut before the exception that failed the task"
        )
    elif uncatalogued and runbook_only:
        n = verified_fp[0] if verified_fp else best
        reasons.append(
            f"memory: runbook entry {n.case_id} ({n.error_class}) describes the error, but only an observed "
            f"retry can vouch for {rule.error_class}, which the catalogue leaves out"
        )
    elif verified_fp:
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
    for n in failed_retries[:2]:
        reasons.append(f"memory: case {n.case_id} ({n.similarity:.2f} similar) was retried and failed again")
    if said_permanent:
        reasons.append(
            f"memory: a person said case {said_permanent[0].case_id} (same fingerprint) is permanent"
        )

    # -- judgement: the diagnosis, and the rules as an independent judge ---------------------
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
                f"judgement: {diagnosis.diagnoser} diagnosis {diagnosis.error_class} is transient "
                f"({diagnosis.recommended_action.value}, confidence {diagnosis.confidence:.2f})"
            )
    source = (excerpt or {}).get("source")
    retry_class = rule.error_class if rule and rule.transient and is_retry_safe(rule.error_class) else None
    if settled:
        retry_class = rule.error_class  # its doctor retries feed back (demotion) like a catalogue class's
    catalogue_ok = retry_class is not None and source in AUTHORITATIVE_SOURCES
    observed_success = any(n.kind == "observed" for n in verified_fp)
    rule_veto = rule is not None and not rule.transient and not observed_success and not settled
    # Other errors a wrapper's output printed are evidence: a permanent one vetoes even when a
    # transient-looking line came last. (An exception's own chain is not: the library errors it was
    # handling say nothing about why it failed.)
    cause_veto = (
        permanent_causes(excerpt) if excerpt and not observed_success and source in WRAPPED_SOURCES else []
    )
    forged = bool((excerpt or {}).get("forged_names"))
    if excerpt is None:
        reasons.append("judgement: no excerpt for the rules to read")
    elif rule is None:
        reasons.append("judgement: the rules know no class for the primary error")
    elif settled:
        reasons.append(
            f"judgement: the rules read the primary error as {rule.error_class}, a surface transient "
            f"failures share; the {diagnosis.diagnoser} diagnosis settles it as transient"
        )
    elif rule_veto:
        reasons.append(
            f"judgement: the rules read the primary error as {rule.error_class}, which is not transient"
        )
    elif not rule.transient:
        reasons.append(
            f"judgement: the rules read the primary error as {rule.error_class}, but a retry of the same "
            f"fingerprint verifiably succeeded"
        )
    elif catalogue_ok:
        reasons.append(f"judgement: the primary error is in the retry-safe class {retry_class}")
    elif retry_class and cut_off:
        reasons.append(
            f"judgement: the log was cut before the exception that failed the task; the {retry_class} "
            f"it shows was being handled when that exception was raised"
        )
    elif retry_class:
        reasons.append(
            f"judgement: the primary error ({retry_class}) was read from a line logged before a generic "
            f"re-raise, not from the exception"
        )
    else:
        reasons.append(
            f"judgement: the rules read the primary error as {rule.error_class}, not a retry-safe class"
        )
    if dispute_reason:
        reasons.append(dispute_reason)
    if cause_veto and not rule_veto:
        reasons.append(
            f"judgement: a cause of the primary error reads as {cause_veto[0].error_class}, not transient"
        )
    if forged:
        reasons.append(
            "judgement: an exception name in the log has invisible or look-alike characters (forged)"
        )
    # A reading of the error as permanent, or a person's "permanent", rules out a retry; a failed
    # retry of this error rules out an automatic one, but a person may still choose to try again.
    # This task instance was cleared by the doctor before and a retry of this error failed since:
    # most likely its own retry, so a person gains nothing from being asked to try it again.
    own_retry_failed = bool(failed_retries) and bool(doctor_clears)
    contradicted = rule_veto or bool(cause_veto) or forged or bool(said_permanent) or own_retry_failed
    agreement_ok = (memory_ok or catalogue_ok or settled) and not contradicted and not failed_retries

    # -- policy ------------------------------------------------------------------------------
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
    demoted = _demoted(retry_class, class_outcomes, settings)
    if demoted:
        reasons.append(demoted)

    if judgement_ok and agreement_ok and policy_ok and not demoted:
        verdict = "auto_retry"
    elif (
        settings.approval_enabled
        and policy_ok
        and retry_shaped
        and not contradicted
        and diagnosis.confidence >= settings.approval_confidence_floor
        and (
            memory_ok
            or catalogue_ok
            or settled
            or (cut_off and retry_class is not None)
            or uncatalogued
            or (best_verified is not None and best_verified >= settings.approval_similarity_floor)
        )
    ):
        verdict = "approval"
        reasons.append(
            "grey zone: a retry looks plausible but the judges do not all agree; an engineer decides"
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
        retry_class=retry_class,
    )


def _settle(
    rule: Rule | None,
    diagnosis: Diagnosis | None,
    excerpt: dict | None,
    doctor_clears: int | None,
    settings: DoctorSettings,
) -> tuple[bool, str | None]:
    """Whether an independent diagnosis settles the rules' disputed reading (disputes.py).

    Returns:
        (settled, reason): reason says why a confident diagnosis could not settle a disputed reading
        (the log argues for a retry, the doctor cleared this task instance before, or the primary
        error is not from an authoritative source), else None.
    """
    if not (settings.settle_disputes and is_disputed(rule) and diagnosis is not None):
        return False, None
    if diagnosis.diagnoser == "offline":
        return False, None  # the offline diagnoser is the rules (and memory): no independent judge
    if not (
        diagnosis.transient
        and diagnosis.recommended_action in RETRY_ACTIONS
        and diagnosis.confidence >= max(settings.dispute_confidence, settings.confidence_threshold)
    ):
        return False, None
    subject = f"the {rule.error_class} reading is disputed, but"
    if (excerpt or {}).get("source") not in AUTHORITATIVE_SOURCES:
        return False, f"judgement: {subject} the primary error is not from the exception that failed the task"
    argued = pleas(excerpt, local_services=settings.local_services)
    if argued:
        return False, (
            f"judgement: {subject} the log argues for a retry besides its error ({argued[0]}): a diagnosis "
            f"may echo it, so the rules' reading stands"
        )
    if doctor_clears is None or doctor_clears > 0:
        return False, (
            f"policy: {subject} a diagnosis settles it once per task instance and the doctor "
            f"{'may have' if doctor_clears is None else 'has'} cleared this one before"
        )
    return True, None


def _demoted(retry_class: str | None, class_outcomes: dict | None, settings: DoctorSettings) -> str | None:
    """The policy reason when the class's verified doctor retries fail too often, else None."""
    if not retry_class or not class_outcomes or class_outcomes.get("retry_class") != retry_class:
        return None
    failed, succeeded = int(class_outcomes.get("failed") or 0), int(class_outcomes.get("succeeded") or 0)
    if failed + succeeded < settings.demote_min_retries or failed <= settings.demote_failed_share * (
        failed + succeeded
    ):
        return None
    return (
        f"policy: class {retry_class} is demoted to approval: {failed} of {failed + succeeded} doctor "
        f"retries failed (more than {settings.demote_failed_share:.0%}) since a person last looked"
    )


def gate_on_confidence(
    ref_data: dict,
    diagnosis_result: dict | None,
    memory: dict | None,
    excerpt: dict | None = None,
    *,
    api=None,
) -> dict:
    """The gate_on_confidence stage: gathers tags, budget and settings, then `decide`.

    Args:
        ref_data: a FailureRef as dict.
        diagnosis_result: the diagnose stage's output.
        memory: retrieve_similar's output.
        excerpt: the fetch_logs stage's output (the rules read its primary error); None: no rule
            evidence, so only memory can back an auto-retry.

    Fails closed: if the DAG's tags or the retry budget cannot be read, the verdict is escalate.

    Returns:
        a Decision as dict. Never raises.
    """
    import logging

    from airflow_doctor.models import FailureRef
    from airflow_doctor.settings import settings as load_settings

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
        from airflow_doctor.hooks.airflow_api import AirflowAPI

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
        excerpt=excerpt,
        class_outcomes=memory.get("class_outcomes"),
    )
    return decision.model_dump(mode="json")

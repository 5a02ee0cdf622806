"""The confidence gate: the one place that decides whether the doctor may clear a task instance.

`decide` gathers what is known about one failure into an `Evidence` value, one part per family
(memory, the diagnosis, the rules' reading, the deployment's record, policy), each with the reasons
that say it, and asks
`verdict`, whose docstring is the gate's table. Every reason is written into the Decision, and from
there into notes, email, Slack and the UI: their wording is part of the interface. People read the
policy in docs/gate.md. Never raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from airflow_doctor.judgement.error_classes import ErrorClass
from airflow_doctor.judgement.reading import Reading, read
from airflow_doctor.knowledge.memory import Recall
from airflow_doctor.models import RETRY_ACTIONS, Action, Decision, Diagnosis, Neighbour, TaskHistory
from airflow_doctor.settings import TAG_NOTIFY_ONLY, TAG_OFF, DoctorSettings

Verdict = Literal["auto_retry", "approval", "escalate"]

# The longest wait before a retry_with_backoff clear, seconds: the wait doubles with each doctor
# clear of the task instance (retry_backoff_seconds, 2x, 4x ...) and is spent in the triggerer.
BACKOFF_CAP_SECONDS = 300.0
GREY_ZONE_REASON = "grey zone: a retry looks plausible but the judges do not all agree; an engineer decides"


@dataclass(frozen=True)
class MemoryEvidence:
    """What memory says about a retry (knowledge/memory.py).

    Attributes:
        vouches: memory vouches for a retry of the error as the rules read it (`Recall.vouches_for`).
        healed_here: a retry of this fingerprint verifiably succeeded here (`Recall.healed_here`).
        failed_retry: a verified failed retry of this error, or of a close case (`Recall.failed_retries`).
        own_retry_failed: ... since the doctor cleared this task instance (`Recall.own_retry_failed`).
        said_permanent: a person said this fingerprint is permanent.
        fixed: a failure of this fingerprint ended only after a change (a new DAG version, a
            person's fix) (`Recall.fixed`).
        verified_case_near: a case whose retry is verified is >= approval_similarity_floor similar.
        similarity: the most similar counted case's similarity, or None.
        reasons: "memory: ..." lines.
    """

    vouches: bool
    healed_here: bool
    failed_retry: bool
    own_retry_failed: bool
    said_permanent: bool
    fixed: bool
    verified_case_near: bool
    similarity: float | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class DiagnosisEvidence:
    """What the diagnosis says.

    Attributes:
        retry_shaped: it says transient with a retry action (retry, retry_with_backoff).
        confident: ... at confidence >= confidence_threshold.
        plausible: ... at confidence >= approval_confidence_floor.
        reasons: "judgement: ..." lines about the diagnosis.
    """

    retry_shaped: bool
    confident: bool
    plausible: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class RulesEvidence:
    """What the rules' reading says, as an independent judge (judgement/reading.py).

    Attributes:
        retry_class: the retry-safe catalogue class the rules read, or a settled disputed reading's
            class (its doctor retries feed back into demotion like a catalogue class's); else None.
        vouches: `retry_class` read from an authoritative source (reading.AUTHORITATIVE_SOURCES).
        settled: an independent diagnosis settles a disputed reading as transient (`settle`).
        leans: backing enough for a person, not for an automatic retry: the catalogue's reading of
            what a cut-off log shows, or a transient reading the catalogue leaves out.
        vetoes: a permanent reading (unless settled or healed here), a permanent error a wrapper
            printed (unless healed here), or a forged exception name.
        reasons: "judgement: ..." lines about the reading (and why a dispute stays open).
    """

    retry_class: ErrorClass | None
    vouches: bool
    settled: bool
    leans: bool
    vetoes: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class HistoryEvidence:
    """What the deployment's own record says: Airflow's DAG versions and the task's recent outcomes
    (capture/history.py), and verified retries of this fingerprint here (memory). None of it can be
    written by the failing task.

    Attributes:
        known: the task's history could be read.
        changed: the failed try ran on a DAG version newer than the task's last success: evidence of
            a change (a typo'd host just deployed), never of a passing cause.
        corroborates: something outside the log speaks for a passing cause: the task succeeded on
            the failed try's DAG version at least `history_min_successes` times among its recent
            task instances and nothing changed since its last success, or a retry of this
            fingerprint verifiably succeeded here (`Recall.healed_here`: Airflow's, the doctor's or
            a person's).
        on_purpose: Airflow failed the try without using its retries (`TaskHistory.retries_left`
            > 0), or the try's own records say its retry policy decided FAIL
            (`TaskHistory.policy_failed`): the task's author, its retry policy or a person said not
            to retry it, and the doctor does not overrule them.
        reasons: "history: ..." lines.
    """

    known: bool
    changed: bool
    corroborates: bool
    reasons: tuple[str, ...]
    on_purpose: bool = False


@dataclass(frozen=True)
class PolicyEvidence:
    """What the deployment's policy allows.

    Attributes:
        holds: the switch is on, the DAG's tags are known and allow the doctor, the retry budget is
            known and not spent.
        demoted: the retry class's verified doctor retries fail too often (`_demoted`).
        approval_enabled: the grey zone goes to a person (else it is escalated).
        reasons: "policy: ..." lines.
    """

    holds: bool
    demoted: bool
    approval_enabled: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Evidence:
    """Everything the gate knows about one failure, by family (docs/gate.md, "Evidence")."""

    memory: MemoryEvidence
    diagnosis: DiagnosisEvidence
    rules: RulesEvidence
    history: HistoryEvidence
    policy: PolicyEvidence

    @property
    def agreement(self) -> bool:
        """An independent judge backs the diagnosis: memory, the catalogue, or a settled dispute."""
        return self.memory.vouches or self.rules.vouches or self.rules.settled

    @property
    def contradicted(self) -> bool:
        """Something rules a retry out, even a person's: a rule's veto, a person's "permanent", a
        retry of this error that failed after the doctor cleared this task instance, a failure of
        this fingerprint that only a change fixed, or a try failed on purpose with retries left (its
        retry policy's FAIL, AirflowFailException, a person)."""
        return (
            self.history.on_purpose
            or self.rules.vetoes
            or self.memory.said_permanent
            or self.memory.own_retry_failed
            or self.memory.fixed
        )

    @property
    def backing_for_a_person(self) -> bool:
        """Enough for an engineer to decide on: agreement, or the rules or memory leaning to a retry."""
        return self.agreement or self.rules.leans or self.memory.verified_case_near

    @property
    def reasons(self) -> list[str]:
        """Every family's reasons: memory, the diagnosis, the rules, the record, policy."""
        return [
            *self.memory.reasons,
            *self.diagnosis.reasons,
            *self.rules.reasons,
            *self.history.reasons,
            *self.policy.reasons,
        ]


def verdict(evidence: Evidence) -> Verdict:
    """The gate's table: what to do with one failure, given its evidence.

    auto_retry, when all five hold:
        the diagnosis says transient, with a retry action, at >= confidence_threshold;
        memory, the retry-safe catalogue or a settled reading vouches (`agreement`; a reading is
        settled only with corroboration from the deployment's record, `settle`);
        nothing contradicts (`Evidence.contradicted`: a veto, a person's "permanent", a fix by a change,
        a try failed on purpose with retries left) and no retry of this error (or of a close case)
        verifiably failed;
        the failed try's DAG version is not newer than the task's last success (a change);
        policy holds and the class is not demoted.
    approval (the grey zone), when approval is enabled and:
        policy holds (a demoted class lands here);
        nothing contradicts (a failed retry alone does not: a person may try again);
        the diagnosis says transient, with a retry action, at >= approval_confidence_floor;
        agreement, or weaker backing: the catalogue's reading of a cut-off log, a transient reading
        the catalogue leaves out, a verified-retry case >= approval_similarity_floor similar (a
        change of DAG version since the last success lands here too: a person decides).
    escalate, otherwise.

    Args:
        evidence: what `gather` found.
    Returns:
        "auto_retry", "approval" or "escalate".
    """
    e = evidence
    if (
        e.diagnosis.confident
        and e.agreement
        and not e.contradicted
        and not e.memory.failed_retry
        and not e.history.changed
        and e.policy.holds
        and not e.policy.demoted
    ):
        return "auto_retry"
    if (
        e.policy.approval_enabled
        and e.policy.holds
        and not e.contradicted
        and e.diagnosis.plausible
        and e.backing_for_a_person
    ):
        return "approval"
    return "escalate"


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
    reading: Reading | None = None,
    history: TaskHistory | None = None,
) -> Decision:
    """Decide auto_retry, approval or escalate for one failure: `verdict(gather(...))`.

    Args:
        diagnosis: the diagnosis, or None when none could be made (never passes).
        neighbours: similar cases, most similar first.
        fingerprint_matches: earlier cases with the same fingerprint.
        doctor_clears: how many times the doctor already cleared this task instance; None when
            unknown (the knowledge base was unreachable), which fails closed.
        dag_tags: tags of the failed task's DAG; None when unknown, which fails closed.
        settings: thresholds and switches (Airflow Variables and the `doctor` config section).
        excerpt: the failure's excerpt (as dict), for the rules to read when `reading` is not given.
            None (and no reading): no rule evidence, so the catalogue cannot vouch and no rule veto.
        class_outcomes: {"retry_class", "succeeded", "failed"}: verified doctor retries of the
            reading's class (KnowledgeBase.class_outcomes), or None when unknown.
        reading: the rules' reading of `excerpt` (reading.read with settings.local_services), when
            the caller has it; read here otherwise.
        history: what Airflow recorded about the failed task instance and its task
            (capture/history.py); None when unknown, which corroborates nothing.
    Returns:
        Decision: the verdict, every family's reasons (plus the grey-zone line for an approval), the
        best similarity, whether memory vouched (`memory_match`), the wait before a
        retry_with_backoff clear (`backoff_seconds`) and the retry class (`retry_class`).
    """
    if reading is None:
        reading = read(excerpt, local_services=settings.local_services)
    recall = Recall.of(neighbours, fingerprint_matches, settings.similarity_threshold)
    evidence = gather(
        diagnosis, recall, reading, doctor_clears, dag_tags, settings, class_outcomes, history=history
    )
    outcome = verdict(evidence)
    reasons = evidence.reasons
    if outcome == "approval":
        reasons.append(GREY_ZONE_REASON)
    return Decision(
        verdict=outcome,
        reasons=reasons,
        similarity=evidence.memory.similarity,
        memory_match=evidence.memory.vouches,
        backoff_seconds=backoff_seconds(diagnosis, doctor_clears, settings) if outcome != "escalate" else 0.0,
        retry_class=evidence.rules.retry_class,
    )


def backoff_seconds(
    diagnosis: Diagnosis | None, doctor_clears: int | None, settings: DoctorSettings
) -> float:
    """Seconds to wait before clearing: for retry_with_backoff, retry_backoff_seconds doubled with
    each earlier doctor clear of the task instance, at most BACKOFF_CAP_SECONDS; else 0."""
    if diagnosis is None or diagnosis.recommended_action != Action.retry_with_backoff:
        return 0.0
    return min(BACKOFF_CAP_SECONDS, settings.retry_backoff_seconds * (2 ** (doctor_clears or 0)))


def gather(
    diagnosis: Diagnosis | None,
    recall: Recall,
    reading: Reading,
    doctor_clears: int | None,
    dag_tags: list[str] | None,
    settings: DoctorSettings,
    class_outcomes: dict | None = None,
    *,
    history: TaskHistory | None = None,
) -> Evidence:
    """Gather the evidence of one failure (arguments as for `decide`; `recall` is its memory).

    Returns:
        Evidence, each family with its reasons in the order the Decision shows them.
    """
    record = _history(history, recall, settings)
    settled, dispute_reason = settle(reading, diagnosis, doctor_clears, settings, record)
    memory = _memory(recall, reading, doctor_clears, settings)
    rules = _rules(reading, diagnosis, memory.healed_here, settled, dispute_reason)
    return Evidence(
        memory=memory,
        diagnosis=_diagnosis(diagnosis, settings),
        rules=rules,
        history=record,
        policy=_policy(dag_tags, doctor_clears, rules.retry_class, class_outcomes, settings),
    )


def settle(
    reading: Reading,
    diagnosis: Diagnosis | None,
    doctor_clears: int | None,
    settings: DoctorSettings,
    record: HistoryEvidence | None = None,
) -> tuple[bool, str | None]:
    """Whether an independent diagnosis, corroborated by the deployment's record, settles a reading
    the rules cannot settle as transient.

    The reading must be `settleable` (a disputed surface, an error the rules know no class for, or a
    transient class the catalogue leaves out) and `settle_disputes` on. It is settled when all hold:
    the diagnosis is not the offline one (which is the rules themselves) and says transient with a
    retry action at >= max(dispute_confidence, confidence_threshold); the primary error comes from
    an authoritative source; nothing else in the log argues for a retry (disputes.pleas: a diagnosis
    may echo it); the doctor has not cleared this task instance before (once per task instance);
    the failed try's DAG version is not newer than the task's last success; and the record
    corroborates a passing cause (`HistoryEvidence.corroborates`). The log, and an LLM reading it,
    are text the failing task wrote: a diagnosis alone never settles.

    Returns:
        (settled, reason): reason says why a confident diagnosis could not settle the reading, else
        None.
    """
    if not (settings.settle_disputes and reading.settleable and diagnosis is not None):
        return False, None
    if diagnosis.diagnoser == "offline":
        return False, None
    if not (
        diagnosis.transient
        and diagnosis.recommended_action in RETRY_ACTIONS
        and diagnosis.confidence >= max(settings.dispute_confidence, settings.confidence_threshold)
    ):
        return False, None
    if reading.rule is None:
        subject = "the rules know no class for the primary error, and"
    elif reading.disputed:
        subject = f"the {reading.error_class} reading is disputed, but"
    else:
        subject = f"the catalogue leaves {reading.error_class} out, and"
    if not reading.authoritative:
        return False, f"judgement: {subject} the primary error is not from the exception that failed the task"
    if reading.pleas:
        return False, (
            f"judgement: {subject} the log argues for a retry besides its error ({reading.pleas[0]}): a "
            f"diagnosis may echo it, so the rules' reading stands"
        )
    if doctor_clears is None or doctor_clears > 0:
        return False, (
            f"policy: {subject} a diagnosis settles it once per task instance and the doctor "
            f"{'may have' if doctor_clears is None else 'has'} cleared this one before"
        )
    if record is not None and record.changed:
        return False, (
            f"judgement: {subject} the DAG changed since the task's last success: a diagnosis does not "
            f"settle a failure that follows a change"
        )
    if record is None or not record.corroborates:
        return False, (
            f"judgement: {subject} a diagnosis alone does not settle it: nothing outside the log "
            f"corroborates a passing cause (no recent success of this task on the same DAG version, "
            f"no verified retry of this fingerprint here)"
        )
    return True, None


def _history(history: TaskHistory | None, recall: Recall, settings: DoctorSettings) -> HistoryEvidence:
    """The deployment's record and its reasons (no log text in them: versions, states, counts)."""
    reasons: list[str] = []
    healed = recall.healed_here
    if history is None:
        reasons.append("history: the task's history was not read")
        return HistoryEvidence(known=False, changed=False, corroborates=healed, reasons=tuple(reasons))
    if history.error:
        reasons.append("history: the task's history could be read only in part")
    last = history.last_success
    changed = history.changed_since_success
    on_version = history.successes_on_version
    version = (
        f"DAG version {history.failed_version}"
        if history.failed_version is not None
        else "an unknown DAG version"
    )
    if changed:
        reasons.append(
            f"history: the failed try ran on DAG version {history.failed_version}, newer than the task's "
            f"last success (version {last.dag_version}): a change, not a passing cause"
        )
    elif last is None:
        reasons.append(f"history: no successful run of this task among the {len(history.recent)} read")
    else:
        reasons.append(
            f"history: the task succeeded {on_version} time(s) on {version} among its last "
            f"{len(history.recent)} run(s); nothing changed since its last success"
            if on_version
            else f"history: the task's last success ran on DAG version {last.dag_version}; "
            f"the failed try on {version}"
        )
    on_purpose = history.policy_failed or bool(history.retries_left)
    if history.policy_failed:
        reasons.append(
            "history: the task's retry policy decided to fail this try (Airflow's record in the try's log): "
            "the doctor does not clear what the task's policy failed on purpose"
        )
    elif history.retries_left:
        left = history.retries_left
        reasons.append(
            f"history: Airflow failed this try with {left} retr{'y' if left == 1 else 'ies'} left: the task "
            f"(AirflowFailException), its retry policy or a person said not to retry it, and the doctor "
            f"does not overrule them"
        )
    # An earlier try Airflow retried ended up_for_retry; one that ended failed ran again only because
    # it was cleared (by a person, on the Doctor tab or in Airflow, or by the doctor): not a retry of
    # Airflow's own.
    retried = sum(1 for t in history.earlier_tries if t.state == "up_for_retry")
    cleared = sum(1 for t in history.earlier_tries if t.state == "failed")
    if retried:
        reasons.append(f"history: Airflow retried this task instance {retried} time(s) before this try")
    if cleared:
        reasons.append(
            f"history: this task instance failed {cleared} time(s) before this try and was cleared to run "
            "again (by a person or the doctor)"
        )
    for n in recall.healed_by_airflow[:1]:
        reasons.append(f"history: Airflow's own retry of case {n.case_id} (same fingerprint) succeeded here")
    corroborates = healed or (
        not changed
        and last is not None
        and last.dag_version == history.failed_version
        and on_version >= settings.history_min_successes
    )
    return HistoryEvidence(
        known=True,
        changed=changed,
        corroborates=corroborates and not on_purpose,
        reasons=tuple(reasons),
        on_purpose=on_purpose,
    )


def _memory(
    recall: Recall, reading: Reading, doctor_clears: int | None, settings: DoctorSettings
) -> MemoryEvidence:
    """Memory's evidence and its reasons (the rules themselves are knowledge/memory.py's)."""
    reasons: list[str] = []
    best = recall.best
    if recall.in_flight:
        # A case whose doctor retry is still in flight says nothing yet, either way.
        reasons.append(f"memory: {len(recall.in_flight)} similar case(s) still being retried, not counted")
    vouches = recall.vouches_for(cut_off=reading.cut_off, uncatalogued=reading.uncatalogued)
    verified_fp = recall.verified_fingerprint
    said_permanent = recall.said_permanent
    failed_retries = recall.failed_retries
    fixed = recall.fixed
    if said_permanent or fixed:
        pass  # the reasons below say why memory does not vouch
    elif recall.vouches and not vouches:
        n = verified_fp[0] if verified_fp else best
        if reading.cut_off:
            reasons.append(
                f"memory: case {n.case_id} ({n.kind}, {n.error_class}) vouches for the error the log shows, "
                f"but the log was cut before the exception that failed the task"
            )
        else:
            reasons.append(f"memory: case {n.case_id} vouches for the error, but not as the rules read it")
    elif verified_fp:
        who = {"airflow": "Airflow's own retry", "human": "a person's retry"}.get(
            verified_fp[0].actor or "", "its retry"
        )
        reasons.append(f"memory: same fingerprint as case {verified_fp[0].case_id}; {who} succeeded here")
    elif vouches and best:
        reasons.append(
            f"memory: case {best.case_id} ({best.kind}, {best.error_class}) is {best.similarity:.2f} "
            f"similar and its retry is verified"
        )
    elif best is None:
        reasons.append("memory: no similar case in the knowledge base")
    elif best.similarity < settings.similarity_threshold:
        reasons.append(f"memory: best similarity {best.similarity:.2f} < {settings.similarity_threshold:.2f}")
    elif best.kind == "runbook":
        reasons.append(
            f"memory: runbook entry {best.case_id} ({best.error_class}) describes the error; curated text, "
            f"not a retry made here, so it does not vouch"
        )
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
    for n in fixed[:1]:
        how = "a new DAG version" if n.outcome == "fixed_by_change" else "a person's change"
        reasons.append(f"memory: case {n.case_id} (same fingerprint) was fixed by {how}, not by a retry")
    best_verified = recall.best_verified_similarity
    return MemoryEvidence(
        vouches=vouches,
        healed_here=recall.healed_here,
        failed_retry=bool(failed_retries),
        own_retry_failed=recall.own_retry_failed(doctor_clears),
        said_permanent=bool(said_permanent),
        fixed=bool(fixed),
        verified_case_near=best_verified is not None and best_verified >= settings.approval_similarity_floor,
        similarity=best.similarity if best else None,
        reasons=tuple(reasons),
    )


def _diagnosis(diagnosis: Diagnosis | None, settings: DoctorSettings) -> DiagnosisEvidence:
    """The diagnosis's evidence and its reasons."""
    retry_shaped = bool(diagnosis and diagnosis.transient and diagnosis.recommended_action in RETRY_ACTIONS)
    confident = retry_shaped and diagnosis.confidence >= settings.confidence_threshold
    reasons: list[str] = []
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
        if confident:
            reasons.append(
                f"judgement: {diagnosis.diagnoser} diagnosis {diagnosis.error_class} is transient "
                f"({diagnosis.recommended_action.value}, confidence {diagnosis.confidence:.2f})"
            )
    return DiagnosisEvidence(
        retry_shaped=retry_shaped,
        confident=confident,
        plausible=retry_shaped and diagnosis.confidence >= settings.approval_confidence_floor,
        reasons=tuple(reasons),
    )


def _rules(
    reading: Reading,
    diagnosis: Diagnosis | None,
    healed_here: bool,
    settled: bool,
    dispute_reason: str | None,
) -> RulesEvidence:
    """The rules' evidence and its reasons: the reading, outweighed by a settled dispute or by a
    retry of this fingerprint that verifiably succeeded here (`healed_here`)."""
    rule = reading.rule
    # A settled reading's doctor retries feed back (demotion) like a catalogue class's.
    retry_class = (rule.error_class if rule else None) if settled else reading.retry_safe_class
    vouches = retry_class is not None and reading.authoritative
    rule_veto = rule is not None and not rule.transient and not healed_here and not settled
    # Other errors a wrapper's output printed are evidence: a permanent one vetoes even when a
    # transient-looking line came last.
    cause_veto = () if healed_here else reading.permanent_causes
    reasons: list[str] = []
    if not reading.excerpt_given:
        reasons.append("judgement: no excerpt for the rules to read")
    elif rule is None and settled:
        reasons.append(
            f"judgement: the rules know no class for the primary error; the {diagnosis.diagnoser} "
            f"diagnosis, corroborated by the deployment's record, settles it as transient"
        )
    elif rule is None:
        reasons.append("judgement: the rules know no class for the primary error")
    elif settled:
        shared = (
            "a surface transient failures share" if reading.disputed else "a class the catalogue leaves out"
        )
        reasons.append(
            f"judgement: the rules read the primary error as {rule.error_class}, {shared}; the "
            f"{diagnosis.diagnoser} diagnosis, corroborated by the deployment's record, settles it as "
            f"transient"
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
    elif vouches:
        reasons.append(f"judgement: the primary error is in the retry-safe class {retry_class}")
    elif retry_class and reading.cut_off:
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
    if reading.forged:
        reasons.append(
            "judgement: an exception name in the log has invisible or look-alike characters (forged)"
        )
    return RulesEvidence(
        retry_class=retry_class,
        vouches=vouches,
        settled=settled,
        leans=(reading.cut_off and retry_class is not None) or reading.uncatalogued,
        vetoes=rule_veto or bool(cause_veto) or reading.forged,
        reasons=tuple(reasons),
    )


def _policy(
    dag_tags: list[str] | None,
    doctor_clears: int | None,
    retry_class: ErrorClass | None,
    class_outcomes: dict | None,
    settings: DoctorSettings,
) -> PolicyEvidence:
    """Policy's evidence and its reasons. Unknown tags or an unknown budget fail closed."""
    reasons: list[str] = []
    holds = True
    if not settings.enabled:
        holds = False
        reasons.append("policy: the doctor's global switch (Variable doctor_enabled) is off")
    if dag_tags is None:
        holds = False
        reasons.append("policy: the DAG's tags could not be read")
    elif TAG_OFF in dag_tags or TAG_NOTIFY_ONLY in dag_tags:
        holds = False
        reasons.append(f"policy: the DAG is tagged {TAG_OFF if TAG_OFF in dag_tags else TAG_NOTIFY_ONLY}")
    if doctor_clears is None:
        holds = False
        reasons.append("policy: the retry budget could not be read from the knowledge base")
    elif doctor_clears >= settings.max_auto_retries:
        # A clear resets Airflow's own retry count: this budget is what stops clear -> fail -> clear.
        holds = False
        reasons.append(
            f"policy: retry did not help: the doctor already cleared this task instance "
            f"{doctor_clears} time(s) (max_auto_retries={settings.max_auto_retries})"
        )
    demoted = _demoted(retry_class, class_outcomes, settings)
    if demoted:
        reasons.append(demoted)
    return PolicyEvidence(
        holds=holds,
        demoted=demoted is not None,
        approval_enabled=settings.approval_enabled,
        reasons=tuple(reasons),
    )


def _demoted(retry_class: str | None, class_outcomes: dict | None, settings: DoctorSettings) -> str | None:
    """The policy reason when the class's verified doctor retries fail too often, else None: more
    than demote_failed_share of at least demote_min_retries retries (since a person last looked)."""
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

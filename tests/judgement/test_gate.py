"""The gate's decisions (docs/gate.md), one row per rule."""

from __future__ import annotations

import pytest

from airflow_doctor.judgement.gate import decide
from airflow_doctor.models import Action, Diagnosis, Neighbour
from airflow_doctor.settings import DoctorSettings

TRANSIENT = Diagnosis(
    error_class="db_connection_refused",
    root_cause="down",
    transient=True,
    recommended_action=Action.retry,
    confidence=0.9,
)


def runbook(similarity: float, transient: bool = True, action: Action = Action.retry) -> Neighbour:
    return Neighbour(
        case_id=1,
        kind="runbook",
        similarity=similarity,
        error_class="db_connection_lost",
        transient=transient,
        recommended_action=action,
    )


def verified(similarity: float) -> Neighbour:
    """An observed case whose retry verifiably succeeded here."""
    return Neighbour(
        case_id=3,
        kind="observed",
        similarity=similarity,
        error_class="db_connection_lost",
        transient=True,
        recommended_action=Action.retry,
        outcome="succeeded",
        actor="doctor",
    )


def observed(similarity: float, outcome: str) -> Neighbour:
    return Neighbour(
        case_id=2,
        kind="observed",
        similarity=similarity,
        error_class="x",
        transient=True,
        recommended_action=Action.retry,
        outcome=outcome,
    )


CASES = [
    pytest.param(TRANSIENT, [verified(0.9)], [], 0, [], {}, "auto_retry", id="all-three-hold"),
    pytest.param(
        TRANSIENT, [verified(0.81)], [], 0, [], {}, "approval", id="similarity-below-threshold-grey-zone"
    ),
    pytest.param(
        TRANSIENT, [verified(0.81)], [], 0, [], {"approval_enabled": False}, "escalate", id="grey-zone-off"
    ),
    pytest.param(TRANSIENT, [verified(0.59)], [], 0, [], {}, "escalate", id="similarity-below-the-floor"),
    pytest.param(
        TRANSIENT,
        [runbook(0.9, transient=False, action=Action.notify), verified(0.7)],
        [],
        0,
        [],
        {},
        "approval",
        id="grey-zone-uses-the-best-verified-neighbour",
    ),
    pytest.param(TRANSIENT, [verified(0.9)], [], 2, [], {}, "escalate", id="no-approval-when-budget-spent"),
    pytest.param(
        TRANSIENT.model_copy(update={"transient": False}),
        [verified(0.7)],
        [],
        0,
        [],
        {},
        "escalate",
        id="no-approval-for-a-permanent-diagnosis",
    ),
    pytest.param(
        TRANSIENT,
        [verified(0.81)],
        [verified(1.0)],
        0,
        [],
        {},
        "auto_retry",
        id="fingerprint-match-counts-as-memory",
    ),
    pytest.param(
        TRANSIENT,
        [runbook(0.95, transient=False, action=Action.notify)],
        [],
        0,
        [],
        {},
        "escalate",
        id="neighbour-is-permanent-runbook",
    ),
    pytest.param(
        TRANSIENT, [observed(0.95, "pending")], [], 0, [], {}, "escalate", id="neighbour-retry-not-verified"
    ),
    pytest.param(
        TRANSIENT,
        [observed(1.0, "pending"), verified(0.9)],
        [],
        0,
        [],
        {},
        "auto_retry",
        id="a-retry-still-in-flight-is-not-counted",
    ),
    pytest.param(
        TRANSIENT,
        [observed(1.0, "escalated"), verified(0.9)],
        [],
        0,
        [],
        {},
        "approval",
        id="an-escalated-neighbour-still-counts-so-an-engineer-decides",
    ),
    pytest.param(
        TRANSIENT, [observed(0.95, "failed")], [], 0, [], {}, "escalate", id="neighbour-retry-failed"
    ),
    pytest.param(
        TRANSIENT, [observed(0.95, "succeeded")], [], 0, [], {}, "auto_retry", id="neighbour-retry-succeeded"
    ),
    pytest.param(None, [verified(0.99)], [], 0, [], {}, "escalate", id="no-diagnosis-never-passes"),
    pytest.param(TRANSIENT, [runbook(0.99)], [], 0, [], {}, "escalate", id="a-runbook-entry-never-vouches"),
    pytest.param(
        TRANSIENT,
        [runbook(0.81)],
        [runbook(1.0)],
        0,
        [],
        {},
        "escalate",
        id="nor-a-runbook-fingerprint-match",
    ),
    pytest.param(
        TRANSIENT.model_copy(update={"transient": False}),
        [verified(0.99)],
        [],
        0,
        [],
        {},
        "escalate",
        id="diagnosis-says-permanent",
    ),
    pytest.param(
        TRANSIENT.model_copy(update={"recommended_action": Action.retry_with_more_resources}),
        [verified(0.99)],
        [],
        0,
        [],
        {},
        "escalate",
        id="action-outside-retry-set",
    ),
    pytest.param(
        TRANSIENT.model_copy(update={"confidence": 0.79}),
        [verified(0.99)],
        [],
        0,
        [],
        {},
        "approval",
        id="confidence-below-threshold-grey-zone",
    ),
    pytest.param(
        TRANSIENT.model_copy(update={"confidence": 0.49}),
        [verified(0.99)],
        [],
        0,
        [],
        {},
        "escalate",
        id="confidence-below-the-floor",
    ),
    pytest.param(TRANSIENT, [verified(0.99)], [], 2, [], {}, "escalate", id="retry-budget-spent"),
    pytest.param(TRANSIENT, [verified(0.99)], [], None, [], {}, "escalate", id="budget-unknown-fails-closed"),
    pytest.param(TRANSIENT, [verified(0.99)], [], 0, None, {}, "escalate", id="tags-unknown-fail-closed"),
    pytest.param(TRANSIENT, [verified(0.99)], [], 0, ["doctor:off"], {}, "escalate", id="tag-doctor-off"),
    pytest.param(
        TRANSIENT, [verified(0.99)], [], 0, ["doctor:notify-only"], {}, "escalate", id="tag-notify-only"
    ),
    pytest.param(
        TRANSIENT, [verified(0.99)], [], 0, [], {"enabled": False}, "escalate", id="global-switch-off"
    ),
    pytest.param(
        TRANSIENT,
        [verified(0.99)],
        [],
        0,
        [],
        {"max_auto_retries": 3},
        "auto_retry",
        id="budget-from-variable",
    ),
    pytest.param(
        TRANSIENT,
        [verified(0.86)],
        [],
        0,
        [],
        {"similarity_threshold": 0.9},
        "approval",
        id="threshold-from-variable-grey-zone",
    ),
    pytest.param(TRANSIENT, [], [], 0, [], {}, "escalate", id="empty-knowledge-base"),
]


@pytest.mark.parametrize(
    ("diagnosis", "neighbours", "fingerprints", "clears", "tags", "overrides", "verdict"), CASES
)
def test_gate_decision(diagnosis, neighbours, fingerprints, clears, tags, overrides, verdict):
    decision = decide(diagnosis, neighbours, fingerprints, clears, tags, DoctorSettings(**overrides))
    assert decision.verdict == verdict, decision.reasons
    assert decision.reasons


def test_backoff_doubles_with_each_doctor_clear():
    diagnosis = TRANSIENT.model_copy(update={"recommended_action": Action.retry_with_backoff})
    settings = DoctorSettings(retry_backoff_seconds=5, max_auto_retries=5)
    waits = [decide(diagnosis, [verified(0.99)], [], n, [], settings).backoff_seconds for n in range(3)]
    assert waits == [5, 10, 20]
    assert decide(TRANSIENT, [verified(0.99)], [], 0, [], settings).backoff_seconds == 0


# -- memory as evidence: the retry-safe catalogue, contradictions, demotion (issue 10) ------------

RESET = {
    "exception_type": "ConnectionResetError",
    "message": "[Errno 104] Connection reset by peer",
    "causes": [],
    "source": "error_detail",
}
KEY_ERROR = {"exception_type": "KeyError", "message": "'order_id'", "causes": [], "source": "error_detail"}


def same_fingerprint(outcome: str, actor: str = "doctor", transient: bool = True) -> Neighbour:
    return Neighbour(
        case_id=7,
        kind="observed",
        similarity=1.0,
        error_class="x",
        transient=transient,
        recommended_action=Action.retry,
        outcome=outcome,
        actor=actor,
    )


def judged(excerpt, neighbours=(), fingerprint_matches=(), class_outcomes=None, **settings):
    return decide(
        TRANSIENT,
        list(neighbours),
        list(fingerprint_matches),
        0,
        [],
        DoctorSettings(**settings),
        excerpt=excerpt,
        class_outcomes=class_outcomes,
    )


def test_a_failure_never_seen_is_retried_when_the_catalogue_and_the_diagnosis_agree():
    decision = judged(RESET, [runbook(0.3)])
    assert decision.verdict == "auto_retry"
    assert decision.retry_class == "connection_reset_by_remote"
    assert any(r.startswith("memory:") for r in decision.reasons)
    assert any("retry-safe class connection_reset_by_remote" in r for r in decision.reasons)


def test_without_rule_evidence_memory_is_still_needed():
    assert judged(None, [runbook(0.3)]).verdict != "auto_retry"
    assert (
        judged({**RESET, "exception_type": None, "message": "the export is not ready"}).verdict
        != "auto_retry"
    )


def test_a_line_logged_before_a_generic_reraise_cannot_vouch():
    decision = judged({**RESET, "source": "context"}, [runbook(0.3)])
    assert decision.verdict != "auto_retry"


def test_a_log_cut_before_the_exception_that_failed_the_task_is_left_to_a_person():
    # What the log shows was being handled when the unknown exception was raised: neither the
    # catalogue nor a runbook entry can vouch for it, but a person may retry it.
    cut = {**RESET, "source": "cut_off"}
    decision = judged(cut, [runbook(0.97)])
    assert decision.verdict == "approval"
    assert any("cut before the exception that failed the task" in r for r in decision.reasons)
    assert judged(cut, [runbook(0.3)]).verdict == "approval"
    # This deployment's own verified retry of the same fingerprint still vouches.
    assert judged(cut, [runbook(0.97)], [same_fingerprint("succeeded")]).verdict == "auto_retry"
    assert judged(RESET, [runbook(0.97)]).verdict == "auto_retry"


def test_a_permanent_rule_vetoes_even_a_near_identical_runbook():
    decision = judged(KEY_ERROR, [runbook(0.95)])
    assert decision.verdict == "escalate"
    assert any("not transient" in r for r in decision.reasons)


def test_a_verified_failed_retry_of_the_same_fingerprint_leaves_it_to_a_person():
    decision = judged(RESET, [runbook(0.99)], [same_fingerprint("failed")])
    assert decision.verdict == "approval"
    assert any("retried and failed again" in r for r in decision.reasons)


def test_a_failed_retry_after_the_doctor_cleared_this_task_instance_is_escalated():
    decision = decide(
        TRANSIENT, [runbook(0.99)], [same_fingerprint("failed")], 1, [], DoctorSettings(), excerpt=RESET
    )
    assert decision.verdict == "escalate"


def test_a_fingerprint_whose_retries_sometimes_fail_is_left_to_a_person():
    mixed = [same_fingerprint("succeeded"), same_fingerprint("failed")]
    assert judged(RESET, [runbook(0.3)], mixed).verdict == "approval"
    assert judged(RESET, [runbook(0.3)], mixed[:1]).verdict == "auto_retry"


def test_a_similar_case_whose_retry_failed_blocks_an_auto_retry():
    decision = judged(RESET, [observed(0.9, "failed"), runbook(0.85)])
    assert decision.verdict == "approval"


def test_a_persons_permanent_answer_blocks_the_fingerprint():
    decision = judged(RESET, [runbook(0.99)], [same_fingerprint("escalated", actor="human", transient=False)])
    assert decision.verdict == "escalate" and not decision.memory_match
    assert any("a person said" in r for r in decision.reasons)
    # The runbook's verified retry is not offered as memory's backing for a retry the person ruled out.
    assert not any("retry is verified" in r for r in decision.reasons)


def test_a_verified_success_of_the_same_fingerprint_outweighs_a_rule():
    # A 403 that a person retried with success: the same error is no longer read as access denied.
    forbidden = {**RESET, "exception_type": "HTTPError", "message": "403 Client Error: Forbidden for url"}
    assert judged(forbidden).verdict == "escalate"
    decision = judged(forbidden, [], [same_fingerprint("succeeded", actor="human")])
    assert decision.verdict == "auto_retry"


def test_forged_exception_names_contradict():
    decision = judged({**RESET, "forged_names": True}, [runbook(0.99)])
    assert decision.verdict == "escalate"
    assert any("forged" in r for r in decision.reasons)


def test_a_wrappers_printed_permanent_error_vetoes_its_transient_last_line():
    wrapped = {**RESET, "source": "wrapped_output", "causes": ["ModuleNotFoundError: No module named 'acme'"]}
    assert judged(wrapped, [runbook(0.3)]).verdict == "escalate"


@pytest.mark.parametrize(
    ("succeeded", "failed", "verdict"),
    [
        pytest.param(9, 1, "auto_retry", id="retries-hold"),
        pytest.param(1, 2, "auto_retry", id="too-few-to-judge"),
        pytest.param(2, 3, "approval", id="most-retries-failed-demoted"),
    ],
)
def test_a_class_whose_retries_fail_is_demoted_to_approval(succeeded, failed, verdict):
    outcomes = {"retry_class": "connection_reset_by_remote", "succeeded": succeeded, "failed": failed}
    decision = judged(RESET, [runbook(0.3)], class_outcomes=outcomes)
    assert decision.verdict == verdict
    assert ("demoted" in " ".join(decision.reasons)) == (verdict == "approval")


def test_localhost_refused_is_a_misconfiguration_unless_local_services_are_real():
    refused = {
        **RESET,
        "exception_type": "psycopg2.OperationalError",
        "message": 'connection to server at "localhost" (127.0.0.1), port 5432 failed: Connection refused',
    }
    assert judged(refused, [runbook(0.95)]).verdict == "escalate"
    assert judged(refused, [runbook(0.95)], local_services=True).verdict == "auto_retry"


def test_a_runbook_entry_never_vouches_only_this_deployments_retries_do():
    """A runbook entry is curated text about a class, not a retry this deployment made: it never
    vouches, whatever its class; this deployment's own verified retry of such a failure does."""
    refused = {
        **RESET,
        "exception_type": "psycopg2.OperationalError",
        "message": 'connection to server at "warehouse.internal" (10.1.2.3), port 15432 failed: Connection refused',
    }
    refused_runbook = runbook(0.97).model_copy(update={"error_class": "connection_refused"})
    assert not refused_runbook.retry_verified and not runbook(0.97).retry_verified
    assert runbook(0.97).describes_retry and not refused_runbook.describes_retry

    uncatalogued = judged(refused, [refused_runbook])
    assert uncatalogued.verdict == "approval", uncatalogued.reasons
    decision = judged(refused, [runbook(0.97)])
    assert decision.verdict == "approval"
    assert any("curated text, not a retry made here, so it does not vouch" in r for r in decision.reasons)
    healed_here = observed(0.97, "succeeded")
    assert judged(refused, [healed_here, runbook(0.9)]).verdict == "auto_retry"
    # on the protocol's standard port the rules vouch by themselves (service_unreachable)
    standard = {**refused, "message": refused["message"].replace("15432", "5432")}
    assert judged(standard, [runbook(0.3)]).verdict == "auto_retry"


# -- the verdict: the gate's table, read from the evidence alone ------------------------------------


def evidence(
    *,
    confident=True,
    plausible=True,
    memory_vouches=True,
    catalogue_vouches=False,
    settled=False,
    leans=False,
    verified_case_near=False,
    vetoes=False,
    said_permanent=False,
    failed_retry=False,
    own_retry_failed=False,
    policy_holds=True,
    demoted=False,
    approval_enabled=True,
    fixed=False,
    changed=False,
):
    from airflow_doctor.judgement.gate import (
        DiagnosisEvidence,
        Evidence,
        HistoryEvidence,
        MemoryEvidence,
        PolicyEvidence,
        RulesEvidence,
    )

    return Evidence(
        memory=MemoryEvidence(
            vouches=memory_vouches,
            healed_here=False,
            failed_retry=failed_retry,
            own_retry_failed=own_retry_failed,
            said_permanent=said_permanent,
            fixed=fixed,
            verified_case_near=verified_case_near,
            similarity=None,
            reasons=(),
        ),
        diagnosis=DiagnosisEvidence(
            retry_shaped=plausible, confident=confident, plausible=plausible, reasons=()
        ),
        rules=RulesEvidence(
            retry_class=None,
            vouches=catalogue_vouches,
            settled=settled,
            leans=leans,
            vetoes=vetoes,
            reasons=(),
        ),
        history=HistoryEvidence(known=True, changed=changed, corroborates=False, reasons=()),
        policy=PolicyEvidence(
            holds=policy_holds, demoted=demoted, approval_enabled=approval_enabled, reasons=()
        ),
    )


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        pytest.param(evidence(), "auto_retry", id="all-hold-memory-vouches"),
        pytest.param(
            evidence(memory_vouches=False, catalogue_vouches=True), "auto_retry", id="the-catalogue-vouches"
        ),
        pytest.param(
            evidence(memory_vouches=False, settled=True), "auto_retry", id="a-settled-dispute-vouches"
        ),
        pytest.param(evidence(confident=False), "approval", id="not-confident-enough-a-person-decides"),
        pytest.param(evidence(failed_retry=True), "approval", id="a-failed-retry-a-person-may-try-again"),
        pytest.param(evidence(demoted=True), "approval", id="a-demoted-class-goes-to-a-person"),
        pytest.param(evidence(memory_vouches=False, leans=True), "approval", id="the-rules-lean-to-a-retry"),
        pytest.param(
            evidence(memory_vouches=False, verified_case_near=True), "approval", id="a-verified-case-is-near"
        ),
        pytest.param(evidence(memory_vouches=False), "escalate", id="nothing-backs-the-diagnosis"),
        pytest.param(evidence(confident=False, plausible=False), "escalate", id="not-even-plausible"),
        pytest.param(evidence(vetoes=True), "escalate", id="a-rule-vetoes"),
        pytest.param(evidence(said_permanent=True), "escalate", id="a-person-said-permanent"),
        pytest.param(
            evidence(failed_retry=True, own_retry_failed=True), "escalate", id="the-doctors-own-retry-failed"
        ),
        pytest.param(evidence(policy_holds=False), "escalate", id="policy-does-not-hold"),
        pytest.param(evidence(fixed=True), "escalate", id="a-change-fixed-this-fingerprint-before"),
        pytest.param(evidence(changed=True), "approval", id="a-new-dag-version-since-the-last-success"),
        pytest.param(
            evidence(changed=True, approval_enabled=False), "escalate", id="a-change-without-a-grey-zone"
        ),
        pytest.param(evidence(demoted=True, approval_enabled=False), "escalate", id="grey-zone-off"),
    ],
)
def test_the_verdict_reads_the_gate_table(found, expected):
    from airflow_doctor.judgement.gate import verdict

    assert verdict(found) == expected


# -- a try failed on purpose ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "says"),
    [
        pytest.param(
            {"retries_left": 2},
            "Airflow failed this try with 2 retries left",
            id="failed-with-retries-left",
        ),
        pytest.param(
            {"retries_left": 0, "policy_failed": True},
            "the task's retry policy decided to fail this try",
            id="its-retry-policy-said-fail",
        ),
    ],
)
def test_a_try_failed_on_purpose_is_never_cleared_and_the_reason_says_why(history, says):
    """Everything else would auto-retry (a verified transient here, a confident diagnosis): the
    task's own word (its retry policy's FAIL, AirflowFailException, a person) still wins, and the
    failure goes to people, not to an approval that would clear it."""
    from airflow_doctor.models import TaskHistory

    args = (TRANSIENT, [verified(0.95)], [verified(1.0)], 0, [], DoctorSettings())
    assert decide(*args, history=TaskHistory(retries_left=0)).verdict == "auto_retry"
    decision = decide(*args, history=TaskHistory(**history))
    assert decision.verdict == "escalate"
    assert any(says in r for r in decision.reasons), decision.reasons


@pytest.mark.parametrize(
    ("states", "says", "never"),
    [
        pytest.param(
            ["up_for_retry", "up_for_retry"],
            "Airflow retried this task instance 2 time(s) before this try",
            "cleared to run again",
            id="airflows-own-retries",
        ),
        pytest.param(
            ["failed"],
            "failed 1 time(s) before this try and was cleared to run again (by a person or the doctor)",
            "Airflow retried",
            id="a-try-a-person-cleared",
        ),
    ],
)
def test_earlier_tries_are_told_as_what_made_them_run_again(states, says, never):
    """A try that ended failed ran again because someone cleared it (a person's "retry it now" on the
    Doctor tab, the doctor): telling it as one of Airflow's retries was untrue."""
    from airflow_doctor.models import TaskHistory, TryRecord

    tries = [TryRecord(run_id="r", try_number=i + 1, state=state) for i, state in enumerate(states)]
    args = (TRANSIENT, [verified(0.95)], [verified(1.0)], 0, [], DoctorSettings())
    decision = decide(*args, history=TaskHistory(retries_left=0, earlier_tries=tries))
    assert any(says in r for r in decision.reasons), decision.reasons
    assert not any(never in r for r in decision.reasons), decision.reasons

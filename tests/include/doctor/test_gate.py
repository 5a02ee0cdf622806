"""The gate's decisions (DESIGN.md "Gate"), one row per rule."""

from __future__ import annotations

import pytest

from include.doctor.config import DoctorSettings
from include.doctor.gate import decide
from include.doctor.models import Action, Diagnosis, Neighbour

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
        error_class="x",
        transient=transient,
        recommended_action=action,
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
    pytest.param(TRANSIENT, [runbook(0.9)], [], 0, [], {}, "auto_retry", id="all-three-hold"),
    pytest.param(
        TRANSIENT, [runbook(0.81)], [], 0, [], {}, "approval", id="similarity-below-threshold-grey-zone"
    ),
    pytest.param(
        TRANSIENT, [runbook(0.81)], [], 0, [], {"approval_enabled": False}, "escalate", id="grey-zone-off"
    ),
    pytest.param(TRANSIENT, [runbook(0.59)], [], 0, [], {}, "escalate", id="similarity-below-the-floor"),
    pytest.param(
        TRANSIENT,
        [runbook(0.9, transient=False, action=Action.notify), runbook(0.7)],
        [],
        0,
        [],
        {},
        "approval",
        id="grey-zone-uses-the-best-verified-neighbour",
    ),
    pytest.param(TRANSIENT, [runbook(0.9)], [], 2, [], {}, "escalate", id="no-approval-when-budget-spent"),
    pytest.param(
        TRANSIENT.model_copy(update={"transient": False}),
        [runbook(0.7)],
        [],
        0,
        [],
        {},
        "escalate",
        id="no-approval-for-a-permanent-diagnosis",
    ),
    pytest.param(
        TRANSIENT,
        [runbook(0.81)],
        [runbook(1.0)],
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
        [observed(1.0, "pending"), runbook(0.9)],
        [],
        0,
        [],
        {},
        "auto_retry",
        id="a-retry-still-in-flight-is-not-counted",
    ),
    pytest.param(
        TRANSIENT,
        [observed(1.0, "escalated"), runbook(0.9)],
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
    pytest.param(None, [runbook(0.99)], [], 0, [], {}, "escalate", id="no-diagnosis-never-passes"),
    pytest.param(
        TRANSIENT.model_copy(update={"transient": False}),
        [runbook(0.99)],
        [],
        0,
        [],
        {},
        "escalate",
        id="diagnosis-says-permanent",
    ),
    pytest.param(
        TRANSIENT.model_copy(update={"recommended_action": Action.retry_with_more_resources}),
        [runbook(0.99)],
        [],
        0,
        [],
        {},
        "escalate",
        id="action-outside-retry-set",
    ),
    pytest.param(
        TRANSIENT.model_copy(update={"confidence": 0.79}),
        [runbook(0.99)],
        [],
        0,
        [],
        {},
        "approval",
        id="confidence-below-threshold-grey-zone",
    ),
    pytest.param(
        TRANSIENT.model_copy(update={"confidence": 0.49}),
        [runbook(0.99)],
        [],
        0,
        [],
        {},
        "escalate",
        id="confidence-below-the-floor",
    ),
    pytest.param(TRANSIENT, [runbook(0.99)], [], 2, [], {}, "escalate", id="retry-budget-spent"),
    pytest.param(TRANSIENT, [runbook(0.99)], [], None, [], {}, "escalate", id="budget-unknown-fails-closed"),
    pytest.param(TRANSIENT, [runbook(0.99)], [], 0, None, {}, "escalate", id="tags-unknown-fail-closed"),
    pytest.param(TRANSIENT, [runbook(0.99)], [], 0, ["doctor:off"], {}, "escalate", id="tag-doctor-off"),
    pytest.param(
        TRANSIENT, [runbook(0.99)], [], 0, ["doctor:notify-only"], {}, "escalate", id="tag-notify-only"
    ),
    pytest.param(
        TRANSIENT, [runbook(0.99)], [], 0, [], {"enabled": False}, "escalate", id="global-switch-off"
    ),
    pytest.param(
        TRANSIENT,
        [runbook(0.99)],
        [],
        0,
        [],
        {"max_auto_retries": 3},
        "auto_retry",
        id="budget-from-variable",
    ),
    pytest.param(
        TRANSIENT,
        [runbook(0.86)],
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
    waits = [decide(diagnosis, [runbook(0.99)], [], n, [], settings).backoff_seconds for n in range(3)]
    assert waits == [5, 10, 20]
    assert decide(TRANSIENT, [runbook(0.99)], [], 0, [], settings).backoff_seconds == 0

"""An engineer's answer in Required Actions, read one way for the clear, the note and the record."""

from __future__ import annotations

import pytest

from airflow_doctor.models import Decision
from airflow_doctor.remediation.actions import approval_answer, approver, escalation_reason, rejecter

ASKED = Decision(verdict="approval", reasons=["r"])


@pytest.mark.parametrize(
    ("result", "approved_by", "rejected_by", "why"),
    [
        pytest.param(
            {"chosen_options": ["Approve"], "responded_by_user": {"id": "7", "name": "ana"}},
            "ana",
            None,
            "ana chose Approve",
            id="approved",
        ),
        pytest.param(
            {"chosen_options": ["Reject"], "responded_by_user": {"id": "8", "name": "bo"}},
            None,
            "bo",
            "bo chose Reject",
            id="rejected-by-a-person",
        ),
        pytest.param(
            {"chosen_options": ["Reject"], "responded_by_user": None},
            None,
            None,
            "nobody approved the retry in time",
            id="timed-out",
        ),
        pytest.param(None, None, None, "the approval request was not answered", id="no-answer"),
        pytest.param(
            {"chosen_options": ["Approve"], "responded_by_user": None},
            "an engineer",
            None,
            "nobody chose Approve",
            id="approved-by-an-unnamed-user",
        ),
    ],
)
def test_one_reading_of_the_answer_names_who_decided(result, approved_by, rejected_by, why):
    assert approver(result) == approved_by
    assert rejecter(result) == rejected_by
    assert escalation_reason(ASKED, None, result) == why


def test_an_older_result_naming_the_person_by_responded_by_is_read_too():
    assert approval_answer({"chosen_options": ["Reject"], "responded_by": "cy"}) == ("Reject", "cy")

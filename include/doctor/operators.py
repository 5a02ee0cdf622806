"""Operators of the doctor DAG that wait without holding a worker slot.

`ClearAndRetryOperator` is the clear_and_retry stage: when the gate asked for a backoff it defers to
the standard provider's `DateTimeTrigger` (the wait runs in the triggerer; the task holds no worker
or pool slot while it waits), then clears in `execute_complete`. Without a backoff it clears at
once, in one task process.

`VerifyRetryOperator` is verify_retry: it checks once, and if a retried try is still running it
defers to `triggers.RetryOutcomeTrigger`, which polls in the triggerer.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator


class ClearAndRetryOperator(BaseOperator):
    """Clear the auto-retried members of a group after their backoff (stages.clear_and_retry).

    Args (templated, usually XComArgs): group (Group dict), decided (GroupDecision dict), diagnosis
    (diagnose's output, may be None), dry_run (bool).
    Returns (XCom): stages.clear_and_retry's output.
    """

    template_fields = ("group", "decided", "diagnosis", "dry_run")

    def __init__(
        self, *, group: Any, decided: Any, diagnosis: Any = None, dry_run: Any = False, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.group = group
        self.decided = decided
        self.diagnosis = diagnosis
        self.dry_run = dry_run

    def execute(self, context) -> dict:
        from include.doctor.stages import retry_at

        context["failure_label"] = (self.group or {}).get("label", "")  # map_index_template

        at = None if _truthy(self.dry_run) else retry_at(self.group, self.decided)
        if at is not None and at > datetime.now(UTC):
            from airflow.providers.standard.triggers.temporal import DateTimeTrigger

            self.log.info("Backing off until %s before clearing (deferred to the triggerer)", at.isoformat())
            self.defer(trigger=DateTimeTrigger(moment=at), method_name="execute_complete")
        return self._clear(context)

    def execute_complete(self, context, event: Any = None) -> dict:
        """Resumed after the backoff: clear now."""
        context["failure_label"] = (self.group or {}).get("label", "")
        return self._clear(context)

    def _clear(self, context) -> dict:
        from include.doctor.stages import clear_and_retry

        return clear_and_retry(
            self.group, self.decided, self.diagnosis, context["run_id"], _truthy(self.dry_run)
        )


def _truthy(value: Any) -> bool:
    """A templated bool arrives as a bool, or as its string when rendered from a template."""
    return value is True or str(value).strip().lower() in {"true", "1", "yes"}


VERIFY_POKE_SECONDS = float(os.environ.get("DOCTOR_VERIFY_POKE_SECONDS", "2"))


class VerifyRetryOperator(BaseOperator):
    """Wait for the retried tries of a group's cleared members to end and record their outcomes.

    Args (templated, usually XComArgs): group (Group dict), retried (clear_and_retry's output or
    None), approved (act_on_approval's output or None).
    Returns (XCom): [check_retry's result or None per member]. Skips when nothing was cleared.
    Raises:
        RuntimeError: the trigger could not reach the API or the knowledge base.
    """

    template_fields = ("group", "retried", "approved")

    def __init__(self, *, group: Any, retried: Any = None, approved: Any = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.group = group
        self.retried = retried
        self.approved = approved

    def execute(self, context) -> list:
        from airflow.sdk.exceptions import AirflowSkipException

        from include.doctor.groups import check_group
        from include.doctor.stages import cleared_members
        from include.doctor.triggers import RetryOutcomeTrigger

        context["failure_label"] = (self.group or {}).get("label", "")
        clears = cleared_members(self.retried, self.approved, len((self.group or {}).get("members") or []))
        if not any(c and c.get("cleared") for c in clears):
            raise AirflowSkipException("nothing was cleared")
        result = check_group(self.group, clears, None)
        if result["done"]:
            return result["verifications"]
        self.defer(
            trigger=RetryOutcomeTrigger(self.group, clears, VERIFY_POKE_SECONDS),
            method_name="execute_complete",
            timeout=timedelta(hours=6),
        )
        return []  # not reached: defer raises

    def execute_complete(self, context, event: dict | None = None) -> list:
        """Resumed by the trigger: the verifications, or the trigger's error."""
        context["failure_label"] = (self.group or {}).get("label", "")
        if not event or "error" in event:
            raise RuntimeError((event or {}).get("error") or "the trigger fired without an event")
        return event["verifications"]

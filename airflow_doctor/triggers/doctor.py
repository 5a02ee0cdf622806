"""Triggers: the doctor's waits run in the triggerer, holding no worker or pool slot.

`RetryOutcomeTrigger` is verify_retry's wait: every `poke_seconds` it reads the cleared task
instances through the REST API and records each retried try's outcome (groups.check_group), and
fires once every cleared member's retried try has ended (or was given up as "unverified" after
[doctor] verify_timeout_seconds). Before this it was a sensor in reschedule mode: a new task
process (~1 s of CPU) every poke.

`StormSettledTrigger` is fetch_logs' wait for a storm to settle (capture.StormWatch): it counts the
unclaimed failures in the inbox every `poll_seconds` and fires once none arrived for the quiet time
(or the longest wait passed). Before this fetch_logs slept through it, holding a worker slot.

`FailedStateTrigger` is clear_and_retry's wait for a task instance to show its try as failed
(Airflow records it after the try's process exits); before this the task polled the REST API.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

log = logging.getLogger(__name__)


class RetryOutcomeTrigger(BaseTrigger):
    """Fire when every cleared member's retried try has ended.

    Args:
        group: the Group (dict). clears: {member_key: its clear} (pipeline.cleared_members).
        poke_seconds: seconds between two reads of the task instances.
    Event payload: {"verifications": {member_key: check_retry's result}} or {"error": str}.
    """

    def __init__(self, group: dict, clears: dict, poke_seconds: float = 2.0) -> None:
        super().__init__()
        self.group = group
        self.clears = clears
        self.poke_seconds = poke_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_doctor.triggers.doctor.RetryOutcomeTrigger",
            {"group": self.group, "clears": self.clears, "poke_seconds": self.poke_seconds},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_doctor.remediation.groups import check_group

        try:
            api, kb = await _clients()
        except Exception as exc:  # noqa: BLE001 - the task fails with the reason, never hangs
            yield TriggerEvent({"error": f"cannot reach the API or the knowledge base: {exc}"[:500]})
            return
        while True:
            result = await asyncio.to_thread(check_group, self.group, self.clears, api=api, kb=kb)
            if result["done"]:
                yield TriggerEvent({"verifications": result["verifications"]})
                return
            await asyncio.sleep(self.poke_seconds)


class StormSettledTrigger(BaseTrigger):
    """Fire when a storm of failures has settled (capture.StormWatch on the inbox's unclaimed count).

    Args:
        unclaimed: the unclaimed count when the wait began.
        started_at: when the wait began (Unix seconds: the trigger may resume in another process).
        quiet_seconds: settled when the count did not change for this long (storm_quiet_seconds).
        max_wait_seconds: settled at the latest this long after `started_at` (storm_max_wait_seconds).
        poll_seconds: seconds between two counts.
    Event payload: {"unclaimed": int, "waited_seconds": float}, or {"error": str} when the knowledge
    base cannot be read (the claim then degrades as it would have without the wait).
    """

    def __init__(
        self,
        unclaimed: int,
        started_at: float,
        quiet_seconds: float,
        max_wait_seconds: float,
        poll_seconds: float = 0.5,
    ) -> None:
        super().__init__()
        self.unclaimed = unclaimed
        self.started_at = started_at
        self.quiet_seconds = quiet_seconds
        self.max_wait_seconds = max_wait_seconds
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_doctor.triggers.doctor.StormSettledTrigger",
            {
                "unclaimed": self.unclaimed,
                "started_at": self.started_at,
                "quiet_seconds": self.quiet_seconds,
                "max_wait_seconds": self.max_wait_seconds,
                "poll_seconds": self.poll_seconds,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_doctor.capture.failures import StormWatch

        watch = StormWatch(self.unclaimed, self.started_at, self.quiet_seconds, self.max_wait_seconds)
        try:
            kb = await _knowledge_base()
            while True:
                await asyncio.sleep(min(self.poll_seconds, self.quiet_seconds))
                count = await asyncio.to_thread(kb.count_unclaimed)
                now = time.time()
                if watch.observe(count, now):
                    yield TriggerEvent(
                        {"unclaimed": count, "waited_seconds": round(now - self.started_at, 1)}
                    )
                    return
        except Exception as exc:  # noqa: BLE001 - the task claims what it can, never hangs
            yield TriggerEvent({"error": f"cannot count the inbox: {type(exc).__name__}: {exc}"[:500]})


class FailedStateTrigger(BaseTrigger):
    """Fire when each task instance shows its try as failed (or has moved on to a later try).

    Args:
        refs: FailureRefs (dicts) to wait for.
        deadline: Unix seconds after which it fires anyway (clear_and_retry then reports the task
            instance still not failed; [doctor] failed_state_timeout_seconds).
        poll_seconds: seconds between two reads of the task instances.
    Event payload: {"waiting": [refs still not failed]} ([] when all are).
    """

    def __init__(self, refs: list, deadline: float, poll_seconds: float = 0.5) -> None:
        super().__init__()
        self.refs = refs
        self.deadline = deadline
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_doctor.triggers.doctor.FailedStateTrigger",
            {"refs": self.refs, "deadline": self.deadline, "poll_seconds": self.poll_seconds},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_doctor.remediation.actions import try_settled

        waiting = list(self.refs)
        try:
            api = await _api()
            while waiting and time.time() < self.deadline:
                tis = [
                    await asyncio.to_thread(
                        api.get_task_instance, r["dag_id"], r["run_id"], r["task_id"], r.get("map_index", -1)
                    )
                    for r in waiting
                ]
                waiting = [
                    r for r, ti in zip(waiting, tis, strict=True) if not try_settled(ti, r["try_number"])
                ]
                if waiting:
                    await asyncio.sleep(self.poll_seconds)
        except Exception as exc:  # noqa: BLE001 - the clear then waits and reports itself
            log.warning("Could not read the task instances: %s", exc)
        yield TriggerEvent({"waiting": waiting})


async def _knowledge_base():
    """The KnowledgeBase of connection doctor_db (KnowledgeBaseHook), read the async way (the
    triggerer's event loop must not block on a connection lookup)."""
    from asgiref.sync import sync_to_async

    from airflow_doctor.hooks.knowledge_base import KnowledgeBaseHook
    from airflow_doctor.knowledge.store import KnowledgeBase

    return KnowledgeBase(dsn=await sync_to_async(lambda: KnowledgeBaseHook().get_dsn())())


async def _clients():
    """(AirflowAPI, KnowledgeBase) built from the doctor's connections, read the async way."""
    return await _api(), await _knowledge_base()


async def _api():
    """The AirflowAPI of connection doctor_airflow_api (AirflowApiHook), read the async way."""
    from asgiref.sync import sync_to_async

    from airflow_doctor.hooks.airflow_api import AirflowApiHook

    return await sync_to_async(lambda: AirflowApiHook().client)()

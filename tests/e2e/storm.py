"""The storm scenario shared by the LocalExecutor and CeleryExecutor end-to-end tests.

Fifty mapped instances of example_burst_failures fail with one upstream error, a few executor slots
at a time. The doctor must claim them whole in one doctor run, record each exactly once, and send
one digest per channel. Assertions read only what the doctor sent (mail, Slack) and stored (the
knowledge base) and Airflow's metadata database (DAG runs, task instances): never the doctor DAG's
task ids, so they hold whatever stages the doctor DAG has.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import psycopg2

from scripts.demo import api_for, kb_for, sink_messages, trigger, wait_until
from scripts.stack import StackConfig

STORM_DAG = "example_burst_failures"
STORM_TASK = "fail_together"


@dataclass
class Storm:
    """What one storm left behind, for further assertions by the caller.

    Attributes:
        run_id: the example_burst_failures run.
        cases: the knowledge base's case report rows of that run (one per failed instance).
        doctor_run_id: the doctor DAG run that claimed every failure of the storm.
        inbox_sources: {map_index: source} of the inbox rows ("listener", "sweeper", "manual").
    """

    run_id: str
    cases: list[dict]
    doctor_run_id: str
    inbox_sources: dict[int, str]


def run_storm(cfg: StackConfig, count: int = 50) -> Storm:
    """Trigger a storm of `count` failures and assert it was handled exactly once, in one digest.

    Waits up to 600 s for the digest and 120 s more for every case, then 10 s for any duplicate.

    Raises:
        AssertionError: a failure was recorded, claimed or reported other than exactly once.
        TimeoutError: the digest or the cases did not arrive in time.
    """
    api, kb = api_for(cfg), kb_for(cfg)
    run_id = trigger(api, STORM_DAG, {"count": count, "fail_at": 0})

    def digest():
        mails, posts = sink_messages(cfg)
        mine = (
            [m for m in mails if run_id in m["text"]],
            [p for p in posts if run_id in json.dumps(p["body"])],
        )
        return mine if mine[0] and mine[1] else None

    wait_until(digest, 600, "the storm's digest on both channels")

    def recorded():
        cases = [c for c in kb.case_report(STORM_DAG) if c["run_id"] == run_id]
        return cases if len(cases) >= count else None

    cases = wait_until(recorded, 120, f"{count} recorded cases")
    time.sleep(10)  # any second message or second handling (there must be none) would show up now
    mails, posts = digest()
    assert len(mails) == 1 and len(posts) == 1, [m["subject"] for m in mails]
    [mail], [post] = mails, posts
    assert mail["subject"].startswith(f"[airflow-doctor] storm: {count} failures of ")
    assert mail["subject"].endswith(f"in {STORM_DAG}: {count} escalated")
    for i in range(count):
        assert f"{STORM_DAG}.{STORM_TASK}[{i}], run {run_id}, try 1: escalated" in mail["text"]
    assert "Fix steps" in mail["html"] and "Confidence" in mail["html"]
    assert post["body"]["blocks"][0]["text"]["text"] == mail["subject"][:150]

    everyone = {i: 1 for i in range(count)}
    with psycopg2.connect(cfg.database_uri("doctor")) as conn, conn.cursor() as cur:
        assert _per_instance(cur, "doctor.failure_cases", run_id) == everyone  # one case per failure
        assert _per_instance(cur, "doctor.remediations", run_id) == everyone  # one decision per failure
        cur.execute("SELECT count(*) FROM doctor.clears WHERE run_id = %s", (run_id,))
        assert cur.fetchone()[0] == 0  # tagged doctor:notify-only: never cleared
        cur.execute("SELECT map_index, source, claimed_by FROM doctor.inbox WHERE run_id = %s", (run_id,))
        inbox = cur.fetchall()
    assert sorted(m for m, _, _ in inbox) == list(range(count))
    claimers = {c for _, _, c in inbox}
    assert len(claimers) == 1 and None not in claimers, claimers  # the storm claimed whole by one run
    [doctor_run_id] = claimers
    with psycopg2.connect(cfg.database_uri("airflow")) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM dag_run WHERE dag_id = 'doctor' AND run_id = %s", (doctor_run_id,))
        assert cur.fetchone()[0] == 1, f"claimed_by {doctor_run_id!r} is not a doctor DAG run"
    assert {c["decision"] for c in cases} == {"escalate"}
    return Storm(run_id, cases, doctor_run_id, {m: s for m, s, _ in inbox})


def _per_instance(cur, table: str, run_id: str) -> dict[int, int]:
    """{map_index: rows} of one storm run in a knowledge-base table with dag_id/run_id/map_index."""
    cur.execute(
        f"SELECT map_index, count(*) FROM {table} WHERE dag_id = %s AND run_id = %s GROUP BY map_index",  # noqa: S608 - table names are constants
        (STORM_DAG, run_id),
    )
    return dict(cur.fetchall())


def task_instance_hosts(cfg: StackConfig, dag_id: str, run_id: str) -> dict[str, set[str]]:
    """{task_id: host names that ran its tries} for one DAG run, from Airflow's metadata database.

    Counts the latest try of each task instance and the earlier ones (task_instance_history); a task
    instance that never ran on a worker (skipped, not yet scheduled) has no host name and is left out.
    """
    with psycopg2.connect(cfg.database_uri("airflow")) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT task_id, hostname FROM task_instance WHERE dag_id = %(d)s AND run_id = %(r)s "
            "UNION ALL SELECT task_id, hostname FROM task_instance_history "
            "WHERE dag_id = %(d)s AND run_id = %(r)s",
            {"d": dag_id, "r": run_id},
        )
        rows = cur.fetchall()
    hosts: dict[str, set[str]] = {}
    for task_id, host in rows:
        if host:
            hosts.setdefault(task_id, set()).add(host)
    return hosts

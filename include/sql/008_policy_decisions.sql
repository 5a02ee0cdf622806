-- Decisions of the retry policy (airflow_doctor/retry_policy.py, docs/retry-policy.md): Airflow 3.3's
-- `retry_policy=` runs in the failing task's worker process, before the doctor ever sees the failure.
-- `DoctorRetryPolicy` writes one row per decision other than DEFAULT (action 'retry': the fingerprint is
-- proven transient here; 'fail': proven permanent, or `on_unknown` said so), best-effort, in the same
-- transaction as its lookup, so the doctor, the Doctor tab and the dashboard can count and explain it.
-- `reason` is the text Airflow stores as the try's retry_reason: counts and dates, never log text.
-- A try may be judged twice (Airflow's task runner re-enters its failure path when a handler fails):
-- rows are never unique by try; the newest one (`decided_at`, `id`) is what Airflow acted on.
CREATE TABLE IF NOT EXISTS doctor.policy_decisions (
    id            bigserial   PRIMARY KEY,
    dag_id        text        NOT NULL,
    run_id        text        NOT NULL,
    task_id       text        NOT NULL,
    map_index     integer     NOT NULL DEFAULT -1,
    try_number    integer     NOT NULL,
    fingerprint   text        NOT NULL,
    action        text        NOT NULL CHECK (action IN ('retry', 'fail')),
    reason        text        NOT NULL,
    delay_seconds real,       -- the retry delay the policy asked for; NULL: the task's own retry_delay
    decided_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS policy_decisions_try
    ON doctor.policy_decisions (dag_id, run_id, task_id, map_index, try_number);

-- Judgement from evidence a failing task cannot write (docs/gate.md, "Evidence sources"):
-- * remediations.actor 'airflow': Airflow's own retry of a failed try, read from the task instance's
--   tries (airflow_doctor/knowledge/airflow_retries.py). decision 'airflow_retry' says the doctor
--   decided nothing: Airflow retried because the task has retries left.
-- * outcomes 'fixed_by_change' (the next success ran on a newer DAG version: the code or DAG changed)
--   and 'fixed_by_person' (a person cleared it late, or changed a connection or Variable in between):
--   neither is a transient failure, and memory reads both as "do not auto-retry this again".
ALTER TABLE doctor.remediations DROP CONSTRAINT IF EXISTS remediations_actor_check;
ALTER TABLE doctor.remediations ADD CONSTRAINT remediations_actor_check
    CHECK (actor IN ('doctor', 'human', 'airflow'));
ALTER TABLE doctor.remediations DROP CONSTRAINT IF EXISTS remediations_decision_check;
ALTER TABLE doctor.remediations ADD CONSTRAINT remediations_decision_check
    CHECK (decision IN ('auto_retry', 'approval', 'escalate', 'airflow_retry'));
ALTER TABLE doctor.remediations DROP CONSTRAINT IF EXISTS remediations_outcome_check;
ALTER TABLE doctor.remediations ADD CONSTRAINT remediations_outcome_check
    CHECK (outcome IN ('pending', 'succeeded', 'failed', 'unverified', 'escalated',
                       'fixed_by_change', 'fixed_by_person'));

-- Tries Airflow put up for retry, as the listener saw them (or the history import found them): the
-- sweeper reads what the next try did and records the verdict once (`learnt_at`, `verdict`).
CREATE TABLE IF NOT EXISTS doctor.retried_tries (
    dag_id      text        NOT NULL,
    run_id      text        NOT NULL,
    task_id     text        NOT NULL,
    map_index   integer     NOT NULL DEFAULT -1,
    try_number  integer     NOT NULL,
    source      text        NOT NULL CHECK (source IN ('listener', 'history')),
    failed_at   timestamptz,
    received_at timestamptz NOT NULL DEFAULT now(),
    looked_at   integer     NOT NULL DEFAULT 0,
    learnt_at   timestamptz,
    verdict     text,
    PRIMARY KEY (dag_id, run_id, task_id, map_index, try_number)
);
CREATE INDEX IF NOT EXISTS retried_tries_unlearnt ON doctor.retried_tries (received_at) WHERE learnt_at IS NULL;

-- Progress of the history import (`python -m airflow_doctor history`, and the sweeper's first runs):
-- one row per import window; `cursor` is the end_date of the last task instance read, so an import
-- that stopped resumes after it.
CREATE TABLE IF NOT EXISTS doctor.history_imports (
    id          bigserial   PRIMARY KEY,
    since       timestamptz NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    cursor      timestamptz,
    finished_at timestamptz,
    task_instances integer  NOT NULL DEFAULT 0,
    tries       integer     NOT NULL DEFAULT 0
);

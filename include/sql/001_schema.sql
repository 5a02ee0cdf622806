-- The doctor's knowledge base: schema `doctor` (docs/architecture.md, "Knowledge base").
-- Applied once, in order, by airflow_doctor/knowledge/store.py under an advisory lock.

CREATE EXTENSION IF NOT EXISTS vector;
CREATE SCHEMA IF NOT EXISTS doctor;

-- Every failure reported by the listener, the sweeper or a person. The primary key is the
-- failure's identity: a second report of the same try is a no-op. `claimed_by` is the doctor DAG
-- run that took it; a row is claimed exactly once.
CREATE TABLE IF NOT EXISTS doctor.inbox (
    dag_id      text        NOT NULL,
    run_id      text        NOT NULL,
    task_id     text        NOT NULL,
    map_index   integer     NOT NULL DEFAULT -1,
    try_number  integer     NOT NULL,
    source      text        NOT NULL CHECK (source IN ('listener', 'sweeper', 'manual')),
    failed_at   timestamptz,
    received_at timestamptz NOT NULL DEFAULT now(),
    claimed_by  text,
    claimed_at  timestamptz,
    PRIMARY KEY (dag_id, run_id, task_id, map_index, try_number)
);
CREATE INDEX IF NOT EXISTS inbox_unclaimed ON doctor.inbox (received_at) WHERE claimed_by IS NULL;

-- Failure cases: observed failures (with their task instance ids) and curated runbook entries
-- (kind = 'runbook', ids NULL). `embedding` is the normalised all-MiniLM-L6-v2 vector of the
-- redacted error signature.
CREATE TABLE IF NOT EXISTS doctor.failure_cases (
    id                 bigserial   PRIMARY KEY,
    kind               text        NOT NULL CHECK (kind IN ('observed', 'runbook')),
    runbook_id         text,
    dag_id             text,
    run_id             text,
    task_id            text,
    map_index          integer,
    try_number         integer,
    operator           text,
    title              text,
    error_class        text,
    transient          boolean,
    recommended_action text,
    fix_steps          jsonb       NOT NULL DEFAULT '[]'::jsonb,
    fingerprint        text,
    excerpt            text,
    embedding          vector(384),
    embedding_model    text,
    doctor_run_id      text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dag_id, run_id, task_id, map_index, try_number),
    UNIQUE (runbook_id)
);
-- `<=>` is cosine distance; it is the operator this index (vector_cosine_ops) serves.
CREATE INDEX IF NOT EXISTS failure_cases_embedding_hnsw
    ON doctor.failure_cases USING hnsw (embedding vector_cosine_ops);
CREATE INDEX IF NOT EXISTS failure_cases_fingerprint ON doctor.failure_cases (fingerprint);

-- One row per diagnosis made for a case (LLM or offline), with its cost.
CREATE TABLE IF NOT EXISTS doctor.diagnoses (
    id                 bigserial   PRIMARY KEY,
    case_id            bigint      NOT NULL REFERENCES doctor.failure_cases (id) ON DELETE CASCADE,
    diagnoser          text        NOT NULL,
    model              text,
    error_class        text        NOT NULL,
    root_cause         text,
    transient          boolean     NOT NULL,
    recommended_action text        NOT NULL,
    confidence         real        NOT NULL,
    fix_steps          jsonb       NOT NULL DEFAULT '[]'::jsonb,
    evidence           jsonb       NOT NULL DEFAULT '[]'::jsonb,
    input_tokens       integer,
    output_tokens      integer,
    cached_tokens      integer,
    latency_ms         integer,
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- What was done about a case and how it ended. outcome: pending until verified.
CREATE TABLE IF NOT EXISTS doctor.remediations (
    id          bigserial   PRIMARY KEY,
    case_id     bigint      NOT NULL REFERENCES doctor.failure_cases (id) ON DELETE CASCADE,
    decision    text        NOT NULL CHECK (decision IN ('auto_retry', 'approval', 'escalate')),
    reasons     jsonb       NOT NULL DEFAULT '[]'::jsonb,
    similarity  real,       -- cosine similarity of the best neighbour when the gate decided
    actor       text        NOT NULL CHECK (actor IN ('doctor', 'human')),
    acted_at    timestamptz NOT NULL DEFAULT now(),
    cleared     boolean     NOT NULL DEFAULT false,
    outcome     text        NOT NULL DEFAULT 'pending'
                            CHECK (outcome IN ('pending', 'succeeded', 'failed', 'escalated')),
    verified_at timestamptz,
    -- the task instance the remediation acted on, for the retry budget
    dag_id      text,
    run_id      text,
    task_id     text,
    map_index   integer
);
CREATE INDEX IF NOT EXISTS remediations_task_instance
    ON doctor.remediations (dag_id, run_id, task_id, map_index);

-- Every clear the doctor issued, written just before the API call: the retry budget counts
-- these, so a retried try that fails again before record_case ran still sees the clear.
CREATE TABLE IF NOT EXISTS doctor.clears (
    dag_id        text        NOT NULL,
    run_id        text        NOT NULL,
    task_id       text        NOT NULL,
    map_index     integer     NOT NULL,
    try_number    integer     NOT NULL,
    doctor_run_id text,
    cleared_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dag_id, run_id, task_id, map_index, try_number)
);

-- The messages the doctor sent about each failed try (issue 14: the Doctor tab's timeline shows
-- them). One row per failure per message: a digest about 50 failures is 50 rows with one subject.
-- `email` / `slack` are deliver()'s result per channel ("sent", "skipped: ...", "failed: ...").
CREATE TABLE IF NOT EXISTS doctor.notifications (
    id          bigserial   PRIMARY KEY,
    dag_id      text        NOT NULL,
    run_id      text        NOT NULL,
    task_id     text        NOT NULL,
    map_index   integer     NOT NULL DEFAULT -1,
    try_number  integer     NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('message', 'digest', 'approval_request')),
    subject     text        NOT NULL,
    email       text        NOT NULL,
    slack       text        NOT NULL,
    sent_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS notifications_task_instance
    ON doctor.notifications (dag_id, run_id, task_id, map_index, try_number);

-- People's answers from the Doctor tab of a task instance (airflow_doctor/ui/).
-- One row per answer, actor always 'human', with the person's Airflow user name and the time:
-- * transient:   "transient: retry it now" (the person cleared the try through the REST API as
--                themselves; `cleared` says whether Airflow accepted the clear);
-- * permanent:   "permanent: don't auto-retry this again": blocks auto-retry of every failure with
--                the case's fingerprint until undone (queries/find_by_fingerprint.sql reads it, so
--                the gate's `judged_permanent` veto sees it on the very next failure);
-- * wrong_class: the diagnosis named the wrong error class; `error_class` is the right one.
-- An answer is active until undone (`undone_at`): by "undo", or by a later answer of the same family
-- on the same case (a verdict, transient/permanent, replaces the earlier verdict; a class replaces
-- the earlier class). Rows are never deleted: the tab shows the whole history.
CREATE TABLE IF NOT EXISTS doctor.answers (
    id          bigserial   PRIMARY KEY,
    case_id     bigint      NOT NULL REFERENCES doctor.failure_cases (id) ON DELETE CASCADE,
    answer      text        NOT NULL CHECK (answer IN ('transient', 'permanent', 'wrong_class')),
    error_class text,
    actor       text        NOT NULL DEFAULT 'human' CHECK (actor = 'human'),
    user_name   text        NOT NULL CHECK (length(user_name) BETWEEN 1 AND 256),
    answered_at timestamptz NOT NULL DEFAULT now(),
    cleared     boolean     NOT NULL DEFAULT false,
    undone_at   timestamptz,
    undone_by   text,
    CHECK ((answer = 'wrong_class') = (error_class IS NOT NULL))
);
-- The fingerprint lookup reads the active answers of each candidate case.
CREATE INDEX IF NOT EXISTS answers_case_active ON doctor.answers (case_id, id DESC) WHERE undone_at IS NULL;

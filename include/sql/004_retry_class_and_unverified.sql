-- Judgement that generalises (issue 10):
-- * remediations.retry_class: the retry-safe catalogue class the rules read in the primary error
--   (airflow_doctor/judgement/catalogue.py). The gate counts each class's verified doctor retries and
--   demotes a class whose retries fail too often (queries/count_class_outcomes.sql).
-- * outcome 'unverified': verify_retry gave up before the retried try ended. Stored as 'pending'
--   before, which the gate skipped forever as "still being retried".
ALTER TABLE doctor.remediations ADD COLUMN IF NOT EXISTS retry_class text;
ALTER TABLE doctor.remediations DROP CONSTRAINT IF EXISTS remediations_outcome_check;
ALTER TABLE doctor.remediations ADD CONSTRAINT remediations_outcome_check
    CHECK (outcome IN ('pending', 'succeeded', 'failed', 'unverified', 'escalated'));
UPDATE doctor.remediations SET outcome = 'unverified'
    WHERE outcome = 'pending' AND verified_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS remediations_retry_class
    ON doctor.remediations (retry_class, acted_at DESC) WHERE retry_class IS NOT NULL;
-- * The sweeper's learn_from_people lists recent observed cases (queries/list_escalated_cases.sql).
CREATE INDEX IF NOT EXISTS failure_cases_observed_created
    ON doctor.failure_cases (created_at DESC) WHERE kind = 'observed';

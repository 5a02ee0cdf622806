-- Time to heal from Airflow's own timestamps (issue #24 item 8). verify_retry recorded only when it
-- saw the outcome (verified_at), which a stopped stack delays by minutes; these are the task
-- instance's times as Airflow recorded them, read through the REST API when the outcome is seen:
-- * failed_ended_at: the failed try's end_date (the failure);
-- * retry_started_at, retry_ended_at: the retried try's start_date and end_date.
-- heal_seconds is the failure to the retried try's end, whatever the verification's delay.
ALTER TABLE doctor.remediations ADD COLUMN IF NOT EXISTS failed_ended_at timestamptz;
ALTER TABLE doctor.remediations ADD COLUMN IF NOT EXISTS retry_started_at timestamptz;
ALTER TABLE doctor.remediations ADD COLUMN IF NOT EXISTS retry_ended_at timestamptz;
ALTER TABLE doctor.remediations ADD COLUMN IF NOT EXISTS heal_seconds double precision
    GENERATED ALWAYS AS (extract(epoch FROM retry_ended_at - failed_ended_at)) STORED;

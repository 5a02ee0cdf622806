-- The history import to work on (airflow_doctor/knowledge/airflow_retries.py, import_history): the
-- newest one not finished, resumed from its cursor; else a new one reading from %(since)s.
WITH open AS (
    SELECT id, since, started_at, cursor, finished_at, task_instances, tries FROM doctor.history_imports
    WHERE finished_at IS NULL ORDER BY id DESC LIMIT 1
), created AS (
    INSERT INTO doctor.history_imports (since)
    SELECT %(since)s WHERE NOT EXISTS (SELECT 1 FROM open)
    RETURNING id, since, started_at, cursor, finished_at, task_instances, tries
)
SELECT * FROM open
UNION ALL
SELECT * FROM created

-- Observed cases by id (the Doctor dashboard's latest case of each top fingerprint): their task
-- instance ids and their redacted excerpt.
SELECT id, dag_id, run_id, task_id, map_index, try_number, excerpt, created_at
FROM doctor.failure_cases WHERE id = ANY(%(ids)s) AND kind = 'observed'

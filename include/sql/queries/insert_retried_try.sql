-- A try Airflow put up for retry (the listener) or a failed try followed by another try (the history
-- import), recorded once for the sweeper to judge (airflow_doctor/knowledge/airflow_retries.py). A try
-- the doctor was told about as a final failure (in the inbox, or a case of its own) is left out: what
-- came of it is the doctor's record (verify_retry, learning from people). Returns the key when new.
INSERT INTO doctor.retried_tries (dag_id, run_id, task_id, map_index, try_number, source, failed_at)
SELECT %(dag_id)s, %(run_id)s, %(task_id)s, %(map_index)s, %(try_number)s, %(source)s, %(failed_at)s
WHERE NOT EXISTS (
        SELECT 1 FROM doctor.inbox i
        WHERE i.dag_id = %(dag_id)s AND i.run_id = %(run_id)s AND i.task_id = %(task_id)s
          AND i.map_index = %(map_index)s AND i.try_number = %(try_number)s)
  AND NOT EXISTS (
        SELECT 1 FROM doctor.failure_cases c
        WHERE c.dag_id = %(dag_id)s AND c.run_id = %(run_id)s AND c.task_id = %(task_id)s
          AND c.map_index = %(map_index)s AND c.try_number = %(try_number)s)
ON CONFLICT (dag_id, run_id, task_id, map_index, try_number) DO NOTHING
RETURNING dag_id

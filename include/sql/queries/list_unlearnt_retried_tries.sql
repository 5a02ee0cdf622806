-- Retried tries whose next try the sweeper has not judged yet (airflow_doctor/knowledge/airflow_retries.py):
-- those looked at least often first, then oldest first, so that tries still waiting for their next
-- try (or whose API call failed) never keep newer ones from being judged. At most %(limit)s.
-- `doctor_case`: the doctor was told about this try as a final failure (inbox) or holds a case of its
-- own for it: its record is the doctor's. `recorded`: Airflow's retry of it is recorded already (a
-- sweep that recorded the case but could not mark the row).
SELECT t.dag_id, t.run_id, t.task_id, t.map_index, t.try_number, t.source, t.failed_at, t.received_at,
       t.looked_at,
       EXISTS (SELECT 1 FROM doctor.inbox i
               WHERE i.dag_id = t.dag_id AND i.run_id = t.run_id AND i.task_id = t.task_id
                 AND i.map_index = t.map_index AND i.try_number = t.try_number)
       OR EXISTS (SELECT 1 FROM doctor.failure_cases c
                  WHERE c.dag_id = t.dag_id AND c.run_id = t.run_id AND c.task_id = t.task_id
                    AND c.map_index = t.map_index AND c.try_number = t.try_number
                    AND NOT EXISTS (SELECT 1 FROM doctor.remediations a
                                    WHERE a.case_id = c.id AND a.actor = 'airflow')) AS doctor_case,
       EXISTS (SELECT 1 FROM doctor.failure_cases c
               JOIN doctor.remediations a ON a.case_id = c.id AND a.actor = 'airflow'
               WHERE c.dag_id = t.dag_id AND c.run_id = t.run_id AND c.task_id = t.task_id
                 AND c.map_index = t.map_index AND c.try_number = t.try_number) AS recorded
FROM doctor.retried_tries t
WHERE t.learnt_at IS NULL
ORDER BY t.looked_at, t.received_at, t.dag_id, t.run_id, t.task_id, t.map_index, t.try_number
LIMIT %(limit)s

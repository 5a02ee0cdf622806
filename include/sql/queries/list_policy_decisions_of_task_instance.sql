-- The DoctorRetryPolicy's decisions about one task instance (the Doctor tab), oldest first: table
-- doctor.policy_decisions (include/sql/008_policy_decisions.sql), read only when it exists
-- (UIStore.policy_decisions_of checks). `verdict`: what the sweeper learnt of the try Airflow retried
-- after the decision (doctor.retried_tries; 'succeeded' when the next try succeeded), or NULL.
SELECT p.dag_id, p.run_id, p.task_id, p.map_index, p.try_number, p.fingerprint, p.action, p.reason,
       p.decided_at, t.verdict
FROM doctor.policy_decisions p
LEFT JOIN doctor.retried_tries t USING (dag_id, run_id, task_id, map_index, try_number)
WHERE p.dag_id = %(dag_id)s AND p.run_id = %(run_id)s AND p.task_id = %(task_id)s
  AND p.map_index = %(map_index)s
ORDER BY p.decided_at, p.try_number

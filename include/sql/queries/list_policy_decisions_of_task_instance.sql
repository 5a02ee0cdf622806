-- The DoctorRetryPolicy's decisions about one task instance (the Doctor tab), oldest try first: table
-- doctor.policy_decisions (include/sql/008_policy_decisions.sql), read only when it exists
-- (UIStore.policy_decisions_of checks). A try judged twice has two rows; the newest one is what
-- Airflow acted on (008's comment), so one row per try. `verdict`: what the sweeper learnt of the
-- try Airflow retried after the decision (doctor.retried_tries; 'succeeded': the next try succeeded).
SELECT DISTINCT ON (p.try_number)
       p.dag_id, p.run_id, p.task_id, p.map_index, p.try_number, p.fingerprint, p.action, p.reason,
       p.decided_at, t.verdict
FROM doctor.policy_decisions p
LEFT JOIN doctor.retried_tries t USING (dag_id, run_id, task_id, map_index, try_number)
WHERE p.dag_id = %(dag_id)s AND p.run_id = %(run_id)s AND p.task_id = %(task_id)s
  AND p.map_index = %(map_index)s
ORDER BY p.try_number, p.decided_at DESC, p.id DESC

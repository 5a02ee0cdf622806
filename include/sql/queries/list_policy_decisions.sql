-- The DoctorRetryPolicy's decisions of the Doctor dashboard: made in [since, until), of the DAGs in
-- %(dag_ids)s, newest first, at most %(limit)s (table doctor.policy_decisions, read only when it
-- exists), one per try (the newest row: what Airflow acted on). `healed`: the policy said retry, and
-- the sweeper saw Airflow's next try succeed (doctor.retried_tries.verdict,
-- airflow_doctor/knowledge/airflow_retries.py).
SELECT * FROM (
    SELECT DISTINCT ON (p.dag_id, p.run_id, p.task_id, p.map_index, p.try_number)
           p.dag_id, p.run_id, p.task_id, p.map_index, p.try_number, p.fingerprint, p.action, p.reason,
           p.decided_at, coalesce(p.action = 'retry' AND t.verdict = 'succeeded', false) AS healed
    FROM doctor.policy_decisions p
    LEFT JOIN doctor.retried_tries t USING (dag_id, run_id, task_id, map_index, try_number)
    WHERE p.decided_at >= %(since)s AND p.decided_at < %(until)s AND p.dag_id = ANY(%(dag_ids)s)
    ORDER BY p.dag_id, p.run_id, p.task_id, p.map_index, p.try_number, p.decided_at DESC, p.id DESC
) latest
ORDER BY decided_at DESC
LIMIT %(limit)s

-- One decision of DoctorRetryPolicy (airflow_doctor/retry_policy.py) other than DEFAULT
-- (008_policy_decisions.sql), written in the transaction of its lookup (policy_evidence.sql).
INSERT INTO doctor.policy_decisions
    (dag_id, run_id, task_id, map_index, try_number, fingerprint, action, reason, delay_seconds)
VALUES
    (%(dag_id)s, %(run_id)s, %(task_id)s, %(map_index)s, %(try_number)s, %(fingerprint)s, %(action)s,
     %(reason)s, %(delay_seconds)s)

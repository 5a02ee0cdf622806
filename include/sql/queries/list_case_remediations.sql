-- Every remediation of one case, oldest first (the Doctor tab's decision and timeline), with the
-- retried try's end and the heal time by Airflow's own timestamps (009_heal_times.sql).
SELECT id, decision, reasons, similarity, actor, acted_at, cleared, outcome, verified_at, retry_class,
       retry_ended_at, heal_seconds
FROM doctor.remediations WHERE case_id = %(case_id)s ORDER BY acted_at, id

-- The observed cases of the Doctor dashboard (airflow_doctor/ui/): created in [since, until), of the
-- DAGs in %(dag_ids)s (those the user may read, narrowed by the filters), newest first, at most
-- %(limit)s. Per case: its decision (the first remediation that is not Airflow's own retry: the
-- doctor's, or the 'human' one of a retry approved in Required Actions; `decided_by` is its actor),
-- whether any person acted, whether a person rejected the retry in Required Actions (remediation/
-- groups.py records "<who> rejected the retry in Required Actions"), the latest diagnosis with its
-- token counts, when the failure happened (inbox) and a person's active verdict.
-- Cases only Airflow's own retries recorded (actor 'airflow', airflow_doctor/knowledge/airflow_retries.py)
-- are left out: the dashboard counts the doctor's decisions.
SELECT c.id, c.dag_id, c.run_id, c.task_id, c.map_index, c.try_number, c.fingerprint, c.error_class,
       c.created_at,
       coalesce(i.failed_at, i.received_at, c.created_at) AS failed_at,
       r.decision, r.actor AS decided_by, r.cleared, r.outcome, r.verified_at, r.acted_at, r.heal_seconds,
       d.diagnoser, d.model, d.input_tokens, d.output_tokens, d.cached_tokens,
       EXISTS (SELECT 1 FROM doctor.remediations h WHERE h.case_id = c.id AND h.actor = 'human') AS human_acted,
       EXISTS (SELECT 1 FROM doctor.remediations h WHERE h.case_id = c.id AND h.actor = 'human'
               AND NOT h.cleared AND h.reasons::text LIKE '%%rejected the retry in Required Actions%%') AS rejected,
       (SELECT a.answer FROM doctor.answers a WHERE a.case_id = c.id AND a.undone_at IS NULL
        AND a.answer IN ('transient', 'permanent') ORDER BY a.id DESC LIMIT 1) AS answer
FROM doctor.failure_cases c
LEFT JOIN doctor.inbox i USING (dag_id, run_id, task_id, map_index, try_number)
LEFT JOIN LATERAL (
    SELECT * FROM doctor.remediations r WHERE r.case_id = c.id
      AND (r.actor = 'doctor' OR (r.actor = 'human' AND r.decision = 'approval' AND r.cleared))
    ORDER BY r.acted_at, r.id LIMIT 1
) r ON true
LEFT JOIN LATERAL (
    SELECT * FROM doctor.diagnoses d WHERE d.case_id = c.id ORDER BY d.id DESC LIMIT 1
) d ON true
WHERE c.kind = 'observed' AND c.created_at >= %(since)s AND c.created_at < %(until)s
  AND c.dag_id = ANY(%(dag_ids)s)
  AND (NOT EXISTS (SELECT 1 FROM doctor.remediations x WHERE x.case_id = c.id AND x.actor = 'airflow')
       OR EXISTS (SELECT 1 FROM doctor.remediations x WHERE x.case_id = c.id AND x.actor <> 'airflow'))
ORDER BY c.created_at DESC
LIMIT %(limit)s

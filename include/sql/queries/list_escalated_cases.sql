-- Escalated cases whose outcome a person may have decided since (airflow_doctor/knowledge/learning.py):
-- observed cases created since %(since)s whose latest remediation is the doctor's escalation (the
-- gate said escalate, or said approval and nobody approved), and that no person's outcome has been
-- recorded for yet (each case is judged once). Newest first, at most %(limit)s.
-- `later_doctor_clears`: doctor clears of a later try of the same task instance; a later try failed
-- for good, so a person's clear of this one did not help.
-- Cases whose auto_retry clear failed are left out: the doctor recorded a clear of that try, so a
-- later try may be the doctor's doing, not a person's.
SELECT c.id AS case_id, c.dag_id, c.run_id, c.task_id, c.map_index, c.try_number,
       r.decision, r.acted_at AS escalated_at,
       (SELECT count(*) FROM doctor.clears k
        WHERE k.dag_id = c.dag_id AND k.run_id = c.run_id AND k.task_id = c.task_id
          AND k.map_index = c.map_index AND k.try_number > c.try_number) AS later_doctor_clears
FROM doctor.failure_cases c
JOIN LATERAL (
    SELECT r.decision, r.actor, r.outcome, r.acted_at FROM doctor.remediations r
    WHERE r.case_id = c.id ORDER BY r.acted_at DESC, r.id DESC LIMIT 1
) r ON true
WHERE c.kind = 'observed'
  AND c.created_at >= %(since)s
  AND r.actor = 'doctor' AND r.outcome = 'escalated' AND r.decision IN ('escalate', 'approval')
  AND NOT EXISTS (SELECT 1 FROM doctor.remediations h WHERE h.case_id = c.id AND h.actor = 'human')
ORDER BY c.created_at DESC, c.id DESC
LIMIT %(limit)s

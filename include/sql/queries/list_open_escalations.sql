-- Escalations waiting on people (the Doctor dashboard): observed cases of the DAGs in %(dag_ids)s,
-- created in [since, until), whose decision was escalate, or approval that nobody approved (the
-- doctor left the try failed: outcome 'escalated'), that no person has acted on since: no person's
-- remediation (a rejection, or what the sweeper saw a person do), no answer on the Doctor tab, and
-- no later try of the task instance reported to the doctor. Oldest first, at most %(limit)s.
SELECT c.id, c.dag_id, c.run_id, c.task_id, c.map_index, c.try_number, c.error_class,
       r.decision, r.acted_at AS escalated_at
FROM doctor.failure_cases c
JOIN LATERAL (
    SELECT r.decision, r.outcome, r.acted_at FROM doctor.remediations r
    WHERE r.case_id = c.id AND r.actor = 'doctor' ORDER BY r.acted_at, r.id LIMIT 1
) r ON true
WHERE c.kind = 'observed' AND c.created_at >= %(since)s AND c.created_at < %(until)s
  AND c.dag_id = ANY(%(dag_ids)s)
  AND r.outcome = 'escalated' AND r.decision IN ('escalate', 'approval', 'auto_retry')
  AND NOT EXISTS (SELECT 1 FROM doctor.remediations h WHERE h.case_id = c.id AND h.actor <> 'doctor')
  AND NOT EXISTS (SELECT 1 FROM doctor.answers a WHERE a.case_id = c.id AND a.undone_at IS NULL)
  AND NOT EXISTS (SELECT 1 FROM doctor.inbox i WHERE i.dag_id = c.dag_id AND i.run_id = c.run_id
                  AND i.task_id = c.task_id AND i.map_index = c.map_index AND i.try_number > c.try_number)
ORDER BY r.acted_at, c.id
LIMIT %(limit)s

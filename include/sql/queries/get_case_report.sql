-- Everything recorded about one failure: case, latest diagnosis, latest remediation.
SELECT c.id, c.dag_id, c.run_id, c.task_id, c.map_index, c.try_number, c.doctor_run_id, c.created_at,
       d.diagnoser, d.model, d.error_class, d.transient, d.recommended_action, d.confidence, d.root_cause,
       r.decision, r.reasons, r.similarity, r.cleared, r.outcome, r.acted_at, i.claimed_at, i.failed_at
FROM doctor.failure_cases c
LEFT JOIN doctor.inbox i USING (dag_id, run_id, task_id, map_index, try_number)
LEFT JOIN LATERAL (SELECT * FROM doctor.diagnoses WHERE case_id = c.id ORDER BY id DESC LIMIT 1) d ON true
LEFT JOIN LATERAL (SELECT * FROM doctor.remediations WHERE case_id = c.id ORDER BY id DESC LIMIT 1) r ON true
WHERE c.kind = 'observed' AND c.dag_id = %(dag_id)s
ORDER BY c.created_at

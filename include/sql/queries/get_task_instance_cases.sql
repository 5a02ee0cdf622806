-- The doctor's cases of one task instance (one per failed try it handled), oldest try first, with
-- the inbox row (when the failure was reported and claimed) and the doctor's clear of that try.
SELECT c.id, c.dag_id, c.run_id, c.task_id, c.map_index, c.try_number, c.operator, c.error_class,
       c.transient, c.fingerprint, c.excerpt, c.doctor_run_id, c.created_at,
       i.source, i.failed_at, i.received_at, i.claimed_by, i.claimed_at, k.cleared_at
FROM doctor.failure_cases c
LEFT JOIN doctor.inbox i USING (dag_id, run_id, task_id, map_index, try_number)
LEFT JOIN doctor.clears k USING (dag_id, run_id, task_id, map_index, try_number)
WHERE c.kind = 'observed' AND c.dag_id = %(dag_id)s AND c.run_id = %(run_id)s
  AND c.task_id = %(task_id)s AND c.map_index = %(map_index)s
ORDER BY c.try_number

-- The failures of one task instance reported to the doctor (the inbox), oldest try first: what the
-- Doctor tab shows before (or without) a recorded case, e.g. while an approval is pending.
SELECT dag_id, run_id, task_id, map_index, try_number, source, failed_at, received_at, claimed_by, claimed_at
FROM doctor.inbox
WHERE dag_id = %(dag_id)s AND run_id = %(run_id)s AND task_id = %(task_id)s AND map_index = %(map_index)s
ORDER BY try_number

-- Doctor-initiated clears of one task instance so far, over all its tries (the retry budget,
-- docs/gate.md, policy).
SELECT count(*) FROM doctor.clears
WHERE dag_id = %(dag_id)s AND run_id = %(run_id)s AND task_id = %(task_id)s AND map_index = %(map_index)s

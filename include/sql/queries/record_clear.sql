-- Note a doctor clear of one failed try before the API call; returns a row only the first time,
-- so two doctor runs can never both clear the same try.
INSERT INTO doctor.clears (dag_id, run_id, task_id, map_index, try_number, doctor_run_id)
VALUES (%(dag_id)s, %(run_id)s, %(task_id)s, %(map_index)s, %(try_number)s, %(doctor_run_id)s)
ON CONFLICT DO NOTHING
RETURNING cleared_at

-- Record a reported failure; a second report of the same try changes nothing.
INSERT INTO doctor.inbox (dag_id, run_id, task_id, map_index, try_number, source, failed_at)
VALUES (%(dag_id)s, %(run_id)s, %(task_id)s, %(map_index)s, %(try_number)s, %(source)s, %(failed_at)s)
ON CONFLICT (dag_id, run_id, task_id, map_index, try_number) DO NOTHING

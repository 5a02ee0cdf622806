-- The sweeper looked at a retried try: with a verdict it is learnt (never looked at again), without
-- one (NULL: its next try has not ended, or an API call failed) it waits for the next sweep.
UPDATE doctor.retried_tries
SET looked_at = looked_at + 1,
    learnt_at = CASE WHEN %(verdict)s::text IS NULL THEN NULL ELSE now() END,
    verdict = %(verdict)s::text
WHERE dag_id = %(dag_id)s AND run_id = %(run_id)s AND task_id = %(task_id)s
  AND map_index = %(map_index)s AND try_number = %(try_number)s AND learnt_at IS NULL

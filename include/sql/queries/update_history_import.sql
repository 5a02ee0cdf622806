-- Progress of a history import: the end_date of the last task instance read (never moved back),
-- the task instances read and retried tries found since the last update, and whether it is finished.
UPDATE doctor.history_imports
SET cursor = CASE WHEN cursor IS NULL OR %(cursor)s::timestamptz > cursor
                  THEN coalesce(%(cursor)s::timestamptz, cursor) ELSE cursor END,
    task_instances = task_instances + %(task_instances)s,
    tries = tries + %(tries)s,
    finished_at = CASE WHEN %(finished)s THEN now() ELSE finished_at END
WHERE id = %(id)s

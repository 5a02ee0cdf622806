-- The messages sent about one task instance's failed tries, oldest first (the Doctor tab's timeline).
SELECT try_number, kind, subject, email, slack, sent_at
FROM doctor.notifications
WHERE dag_id = %(dag_id)s AND run_id = %(run_id)s AND task_id = %(task_id)s AND map_index = %(map_index)s
ORDER BY sent_at, id

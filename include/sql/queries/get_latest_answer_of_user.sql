-- The newest answer one person gave on any case of one task instance (the Doctor tab's Undo: a
-- person may undo only the answer they gave last there).
SELECT a.id, a.case_id, a.answer, a.undone_at
FROM doctor.answers a
JOIN doctor.failure_cases c ON c.id = a.case_id
WHERE c.dag_id = %(dag_id)s AND c.run_id = %(run_id)s AND c.task_id = %(task_id)s
  AND c.map_index = %(map_index)s AND a.user_name = %(user_name)s
ORDER BY a.id DESC
LIMIT 1

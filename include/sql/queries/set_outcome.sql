-- The verified outcome of a doctor (or approved) retry: the latest remediation of the case.
UPDATE doctor.remediations SET outcome = %(outcome)s, verified_at = now()
WHERE id = (
    SELECT r.id FROM doctor.remediations r
    JOIN doctor.failure_cases c ON c.id = r.case_id
    WHERE c.dag_id = %(dag_id)s AND c.run_id = %(run_id)s AND c.task_id = %(task_id)s
      AND c.map_index = %(map_index)s AND c.try_number = %(try_number)s
    ORDER BY r.id DESC LIMIT 1
)

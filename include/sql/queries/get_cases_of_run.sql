-- The cases one doctor DAG run recorded, for its note.
SELECT c.dag_id, c.task_id, c.map_index, c.try_number, d.error_class, r.decision, r.cleared
FROM doctor.failure_cases c
LEFT JOIN LATERAL (SELECT * FROM doctor.diagnoses WHERE case_id = c.id ORDER BY id DESC LIMIT 1) d ON true
LEFT JOIN LATERAL (SELECT * FROM doctor.remediations WHERE case_id = c.id ORDER BY id DESC LIMIT 1) r ON true
WHERE c.doctor_run_id = %(doctor_run_id)s
ORDER BY c.dag_id, c.task_id, c.map_index

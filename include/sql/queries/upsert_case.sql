-- Record an observed failure case; the same try recorded twice keeps one row.
INSERT INTO doctor.failure_cases
    (kind, dag_id, run_id, task_id, map_index, try_number, operator, title, error_class, transient,
     recommended_action, fix_steps, fingerprint, excerpt, embedding, embedding_model, doctor_run_id)
VALUES
    ('observed', %(dag_id)s, %(run_id)s, %(task_id)s, %(map_index)s, %(try_number)s, %(operator)s,
     %(title)s, %(error_class)s, %(transient)s, %(recommended_action)s, %(fix_steps)s, %(fingerprint)s,
     %(excerpt)s, %(embedding)s::vector, %(embedding_model)s, %(doctor_run_id)s)
ON CONFLICT (dag_id, run_id, task_id, map_index, try_number) DO UPDATE SET
    error_class = EXCLUDED.error_class, transient = EXCLUDED.transient,
    recommended_action = EXCLUDED.recommended_action, fix_steps = EXCLUDED.fix_steps,
    doctor_run_id = EXCLUDED.doctor_run_id
RETURNING id

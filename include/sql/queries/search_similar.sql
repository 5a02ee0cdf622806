-- Top-k cases by cosine similarity. `<=>` is cosine distance, served by the HNSW index built
-- with vector_cosine_ops; similarity = 1 - distance. The latest remediation gives the outcome and who acted.
-- Airflow's own retries of the very task instance asking (actor 'airflow') are left out, as in
-- find_by_fingerprint.sql: its earlier failed tries are the same incident, not memory of another one.
SELECT c.id, c.kind, 1 - (c.embedding <=> %(embedding)s::vector) AS similarity, c.title,
       c.error_class, c.transient, c.recommended_action, c.fingerprint, c.fix_steps,
       c.dag_id, c.task_id,
       (SELECT r.outcome FROM doctor.remediations r WHERE r.case_id = c.id
        ORDER BY r.acted_at DESC LIMIT 1) AS outcome,
       (SELECT r.actor FROM doctor.remediations r WHERE r.case_id = c.id
        ORDER BY r.acted_at DESC LIMIT 1) AS actor
FROM doctor.failure_cases c
WHERE c.embedding IS NOT NULL
  AND NOT (c.dag_id IS NOT DISTINCT FROM %(dag_id)s AND c.run_id IS NOT DISTINCT FROM %(run_id)s
           AND c.task_id IS NOT DISTINCT FROM %(task_id)s AND c.map_index IS NOT DISTINCT FROM %(map_index)s
           AND c.try_number IS NOT DISTINCT FROM %(try_number)s)
  AND NOT (c.dag_id IS NOT DISTINCT FROM %(dag_id)s AND c.run_id IS NOT DISTINCT FROM %(run_id)s
           AND c.task_id IS NOT DISTINCT FROM %(task_id)s AND c.map_index IS NOT DISTINCT FROM %(map_index)s
           AND EXISTS (SELECT 1 FROM doctor.remediations a WHERE a.case_id = c.id AND a.actor = 'airflow'))
ORDER BY c.embedding <=> %(embedding)s::vector
LIMIT %(k)s

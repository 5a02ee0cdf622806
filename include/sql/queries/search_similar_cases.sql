-- The cases most similar to one case (the Doctor tab), by cosine distance `<=>` served by the HNSW
-- index (vector_cosine_ops); similarity = 1 - distance. With each one's task instance ids (for a
-- link, and the run and date that tell rows apart), its latest outcome and who acted, and the
-- newest active answer a person gave on it.
SELECT n.id, n.kind, n.runbook_id, n.title, n.error_class, n.dag_id, n.run_id, n.task_id, n.map_index,
       n.try_number, n.created_at, 1 - (n.embedding <=> c.embedding) AS similarity, r.outcome, r.actor,
       (SELECT a.answer FROM doctor.answers a WHERE a.case_id = n.id AND a.undone_at IS NULL
        AND a.answer IN ('transient', 'permanent') ORDER BY a.id DESC LIMIT 1) AS answer
FROM doctor.failure_cases c
CROSS JOIN LATERAL (
    SELECT * FROM doctor.failure_cases n
    WHERE n.embedding IS NOT NULL AND n.id <> c.id
    ORDER BY n.embedding <=> c.embedding LIMIT %(k)s
) n
LEFT JOIN LATERAL (
    SELECT r.outcome, r.actor FROM doctor.remediations r WHERE r.case_id = n.id
    ORDER BY r.acted_at DESC LIMIT 1
) r ON true
WHERE c.id = %(case_id)s AND c.embedding IS NOT NULL
ORDER BY similarity DESC

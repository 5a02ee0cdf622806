-- Seed or refresh one curated runbook entry (include/knowledge/).
INSERT INTO doctor.failure_cases
    (kind, runbook_id, title, error_class, transient, recommended_action, fix_steps, fingerprint,
     excerpt, embedding, embedding_model)
VALUES
    ('runbook', %(runbook_id)s, %(title)s, %(error_class)s, %(transient)s, %(recommended_action)s,
     %(fix_steps)s, %(fingerprint)s, %(excerpt)s, %(embedding)s::vector, %(embedding_model)s)
ON CONFLICT (runbook_id) DO UPDATE SET
    title = EXCLUDED.title, error_class = EXCLUDED.error_class, transient = EXCLUDED.transient,
    recommended_action = EXCLUDED.recommended_action, fix_steps = EXCLUDED.fix_steps,
    fingerprint = EXCLUDED.fingerprint, excerpt = EXCLUDED.excerpt, embedding = EXCLUDED.embedding,
    embedding_model = EXCLUDED.embedding_model

-- A stored vector for a fingerprint (same fingerprint = same signature = same vector), as text.
SELECT embedding::text FROM doctor.failure_cases
WHERE fingerprint = %(fingerprint)s AND embedding_model = %(model)s AND embedding IS NOT NULL
LIMIT 1

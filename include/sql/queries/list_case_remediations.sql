-- Every remediation of one case, oldest first (the Doctor tab's decision and timeline).
SELECT id, decision, reasons, similarity, actor, acted_at, cleared, outcome, verified_at, retry_class
FROM doctor.remediations WHERE case_id = %(case_id)s ORDER BY acted_at, id

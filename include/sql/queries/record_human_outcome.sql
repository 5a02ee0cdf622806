-- Record what a person did about an escalated case (airflow_doctor/knowledge/learning.py), once per case:
-- a remediation with actor 'human' and its verified outcome, and the case's `transient` when the
-- person's action says it (NULL leaves it as the diagnosis had it). Returns the case id only when
-- the row was written; a case that already has a person's outcome is left as it is.
WITH judged AS (
    INSERT INTO doctor.remediations
        (case_id, decision, reasons, actor, cleared, outcome, verified_at, dag_id, run_id, task_id, map_index)
    SELECT c.id, %(decision)s, %(reasons)s, 'human', %(cleared)s, %(outcome)s, now(), c.dag_id, c.run_id,
           c.task_id, c.map_index
    FROM doctor.failure_cases c
    WHERE c.id = %(case_id)s
      AND NOT EXISTS (SELECT 1 FROM doctor.remediations h WHERE h.case_id = c.id AND h.actor = 'human')
    RETURNING case_id
)
UPDATE doctor.failure_cases c
SET transient = coalesce(%(transient)s::boolean, c.transient)
FROM judged
WHERE c.id = judged.case_id
RETURNING c.id

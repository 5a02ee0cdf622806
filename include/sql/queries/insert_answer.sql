-- A person's answer on the Doctor tab (airflow_doctor/knowledge/answers.py). First retires the active answer
-- of the same family on the case (a verdict, transient/permanent, replaces the earlier verdict; a
-- class replaces the earlier class), then inserts the new one (Postgres runs a data-modifying WITH
-- exactly once, referenced or not). Returns the new row; nothing for an unknown or runbook case.
WITH retired AS (
    UPDATE doctor.answers SET undone_at = now(), undone_by = %(user_name)s
    WHERE case_id = %(case_id)s AND undone_at IS NULL
      AND (CASE WHEN answer = 'wrong_class' THEN 'class' ELSE 'verdict' END)
        = (CASE WHEN %(answer)s = 'wrong_class' THEN 'class' ELSE 'verdict' END)
    RETURNING id
)
INSERT INTO doctor.answers (case_id, answer, error_class, user_name, cleared)
SELECT %(case_id)s, %(answer)s, %(error_class)s, %(user_name)s, %(cleared)s
FROM doctor.failure_cases c
WHERE c.id = %(case_id)s AND c.kind = 'observed'
RETURNING id, case_id, answer, error_class, actor, user_name, answered_at, cleared

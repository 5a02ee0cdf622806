-- Cases with the same fingerprint, with their latest outcome and who acted, as the gate reads them.
-- A person's active answer on the Doctor tab (doctor.answers, 005_answers.sql) overrides what the
-- case's remediations say: "permanent" reads as a person who left it failed (actor human, not
-- transient, outcome escalated: Neighbour.judged_permanent, the gate's veto), "transient" as a
-- person's verified transient (outcome succeeded unless a retry of it was since seen to fail),
-- "wrong_class" replaces the error class. Cases with an active "permanent" come first, so that
-- later failures of the same fingerprint never push that veto out of the five returned.
-- A failure people left failed (learning.py: no answer, 24 h after the escalation) or whose retry
-- they rejected in Required Actions says "permanent" for its own DAG and task alone (when the caller
-- names one): another task's neglected escalation (a notify-only DAG, a run the next schedule made
-- moot) reads as no outcome here, not as a veto on every DAG. An answer on the Doctor tab is global.
-- Airflow's own retries of the very task instance asking (actor 'airflow',
-- airflow_doctor/knowledge/airflow_retries.py) are left out: its earlier failed tries are part of the
-- same incident, not memory of another one. A person's "transient" on an earlier try of the very task
-- instance asking reads as a failed retry: the try that person's clear started is the failure asking.
SELECT c.id, c.kind, 1.0 AS similarity, c.title,
       coalesce(wc.error_class, c.error_class) AS error_class,
       CASE v.answer WHEN 'permanent' THEN false WHEN 'transient' THEN true ELSE c.transient END AS transient,
       c.recommended_action, c.fingerprint, c.fix_steps, c.dag_id, c.task_id,
       CASE WHEN v.answer = 'permanent' THEN 'escalated'
            WHEN v.answer = 'transient'
                 AND c.dag_id IS NOT DISTINCT FROM %(dag_id)s AND c.run_id IS NOT DISTINCT FROM %(run_id)s
                 AND c.task_id IS NOT DISTINCT FROM %(task_id)s
                 AND c.map_index IS NOT DISTINCT FROM %(map_index)s AND c.try_number < %(try_number)s
                 THEN 'failed'
            WHEN v.answer = 'transient' AND r.outcome IS DISTINCT FROM 'failed' THEN 'succeeded'
            WHEN v.answer IS NULL AND r.actor = 'human' AND r.outcome = 'escalated' AND %(task_id)s IS NOT NULL
                 AND NOT (c.dag_id IS NOT DISTINCT FROM %(dag_id)s AND c.task_id IS NOT DISTINCT FROM %(task_id)s)
                 THEN 'none'
            ELSE r.outcome END AS outcome,
       CASE WHEN v.answer IS NOT NULL THEN 'human' ELSE r.actor END AS actor
FROM doctor.failure_cases c
LEFT JOIN LATERAL (
    SELECT r.outcome, r.actor FROM doctor.remediations r WHERE r.case_id = c.id
    ORDER BY r.acted_at DESC LIMIT 1
) r ON true
LEFT JOIN LATERAL (
    SELECT a.answer FROM doctor.answers a
    WHERE a.case_id = c.id AND a.undone_at IS NULL AND a.answer IN ('transient', 'permanent')
    ORDER BY a.id DESC LIMIT 1
) v ON true
LEFT JOIN LATERAL (
    SELECT a.error_class FROM doctor.answers a
    WHERE a.case_id = c.id AND a.undone_at IS NULL AND a.answer = 'wrong_class'
    ORDER BY a.id DESC LIMIT 1
) wc ON true
WHERE c.fingerprint = %(fingerprint)s
  AND NOT (c.dag_id IS NOT DISTINCT FROM %(dag_id)s AND c.run_id IS NOT DISTINCT FROM %(run_id)s
           AND c.task_id IS NOT DISTINCT FROM %(task_id)s AND c.map_index IS NOT DISTINCT FROM %(map_index)s
           AND c.try_number IS NOT DISTINCT FROM %(try_number)s)
  AND NOT ((r.actor = 'airflow') IS TRUE
           AND c.dag_id IS NOT DISTINCT FROM %(dag_id)s AND c.run_id IS NOT DISTINCT FROM %(run_id)s
           AND c.task_id IS NOT DISTINCT FROM %(task_id)s AND c.map_index IS NOT DISTINCT FROM %(map_index)s)
ORDER BY (v.answer = 'permanent') IS TRUE DESC, c.created_at DESC
LIMIT 5

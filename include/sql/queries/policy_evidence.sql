-- What this deployment has proven about error fingerprints, for the retry policy
-- (airflow_doctor/retry_policy.py: `DoctorRetryPolicy` asks for one fingerprint at a task's failure,
-- `airflow-doctor export-policy` for all of them, with %(fingerprint)s NULL). One row per fingerprint
-- with at least one outcome.
--
-- Each observed case of the fingerprint says what happened to it the way memory reads it
-- (find_by_fingerprint.sql): a person's active verdict on the Doctor tab (doctor.answers) overrides the
-- case's latest remediation: "permanent" is a person's permanent; "transient" a verified success
-- unless a retry of it has since failed; otherwise the latest remediation's outcome (succeeded/failed:
-- a verified retry by the doctor, a person or Airflow; fixed_by_change/fixed_by_person: ended by a
-- change). Its time is the answer's, else the remediation's verification (or action) time.
-- The cases of the asking task instance itself are left out: its earlier tries are the same incident.
--
-- Served by failure_cases_fingerprint (001) for one fingerprint, remediations_case_latest (001) and
-- answers_case_active (005) per case: the shape find_by_fingerprint.sql has, which bench/retrieval
-- measured at 8.8-13 ms p95 with 100k-1M cases.
WITH judged AS (
    SELECT c.fingerprint, c.recommended_action,
           CASE WHEN v.answer = 'permanent' THEN 'permanent'
                WHEN v.answer = 'transient' AND r.outcome IS DISTINCT FROM 'failed' THEN 'succeeded'
                ELSE r.outcome END AS result,
           CASE WHEN v.answer = 'permanent'
                  OR (v.answer = 'transient' AND r.outcome IS DISTINCT FROM 'failed') THEN v.answered_at
                ELSE coalesce(r.verified_at, r.acted_at) END AS at
    FROM doctor.failure_cases c
    LEFT JOIN LATERAL (
        SELECT r.outcome, r.verified_at, r.acted_at FROM doctor.remediations r WHERE r.case_id = c.id
        ORDER BY r.acted_at DESC LIMIT 1
    ) r ON true
    LEFT JOIN LATERAL (
        SELECT a.answer, a.answered_at FROM doctor.answers a
        WHERE a.case_id = c.id AND a.undone_at IS NULL AND a.answer IN ('transient', 'permanent')
        ORDER BY a.id DESC LIMIT 1
    ) v ON true
    WHERE c.kind = 'observed' AND c.fingerprint IS NOT NULL
      AND (%(fingerprint)s::text IS NULL OR c.fingerprint = %(fingerprint)s)
      AND NOT (c.dag_id IS NOT DISTINCT FROM %(dag_id)s AND c.run_id IS NOT DISTINCT FROM %(run_id)s
               AND c.task_id IS NOT DISTINCT FROM %(task_id)s AND c.map_index IS NOT DISTINCT FROM %(map_index)s)
),
last AS (
    SELECT fingerprint, coalesce(max(at) FILTER (WHERE result = 'succeeded'), '-infinity') AS since
    FROM judged GROUP BY fingerprint
)
SELECT j.fingerprint,
       count(*) FILTER (WHERE j.result = 'succeeded') AS succeeded,
       max(j.at) FILTER (WHERE j.result = 'succeeded') AS last_succeeded,
       count(*) FILTER (WHERE j.result = 'failed' AND j.at > l.since) AS failed_since,
       count(*) FILTER (WHERE j.result = 'fixed_by_change' AND j.at > l.since) AS fixed_by_change_since,
       count(*) FILTER (WHERE j.result = 'fixed_by_person' AND j.at > l.since) AS fixed_by_person_since,
       count(*) FILTER (WHERE j.result IN ('fixed_by_change', 'fixed_by_person')) AS fixed,
       count(*) FILTER (WHERE j.result = 'permanent') AS permanent,
       (array_agg(j.recommended_action ORDER BY j.at DESC)
            FILTER (WHERE j.result = 'succeeded'))[1] AS recommended_action
FROM judged j JOIN last l USING (fingerprint)
WHERE j.result IN ('succeeded', 'failed', 'fixed_by_change', 'fixed_by_person', 'permanent')
GROUP BY j.fingerprint, l.since
ORDER BY j.fingerprint

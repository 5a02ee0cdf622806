-- Verified outcomes of the doctor's own auto-retries of one retry-safe class, over the last 30
-- days and since a person last acted on a failure of that class (their answer is "a person looked":
-- it lifts a demotion). Served by remediations_retry_class (004).
SELECT count(*) FILTER (WHERE r.outcome = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE r.outcome = 'failed') AS failed
FROM doctor.remediations r
WHERE r.retry_class = %(retry_class)s
  AND r.actor = 'doctor' AND r.decision = 'auto_retry'
  AND r.acted_at > now() - interval '30 days'
  AND r.acted_at > coalesce(
      (SELECT max(h.acted_at) FROM doctor.remediations h
       WHERE h.retry_class = %(retry_class)s AND h.actor = 'human'),
      '-infinity'::timestamptz)

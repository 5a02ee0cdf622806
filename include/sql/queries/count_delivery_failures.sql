-- Messages sent about failures of the given DAGs since a time, and how many of them an email or a
-- Slack delivery failed for (deliver() records "failed: ..."): the Doctor dashboard's "last hour".
SELECT count(*)                                        AS messages,
       count(*) FILTER (WHERE email LIKE 'failed%%')  AS email_failed,
       count(*) FILTER (WHERE slack LIKE 'failed%%')  AS slack_failed,
       max(sent_at) FILTER (WHERE email LIKE 'failed%%' OR slack LIKE 'failed%%') AS last_failure
FROM doctor.notifications
WHERE sent_at >= %(since)s AND dag_id = ANY(%(dag_ids)s)

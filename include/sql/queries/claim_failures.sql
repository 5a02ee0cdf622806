-- Claim every unclaimed failure for one doctor DAG run. SKIP LOCKED lets two concurrent doctor
-- runs split the inbox without either waiting or both taking the same row.
WITH claimable AS (
    SELECT dag_id, run_id, task_id, map_index, try_number
    FROM doctor.inbox
    WHERE claimed_by IS NULL
    ORDER BY received_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE doctor.inbox AS i
SET claimed_by = %(doctor_run_id)s, claimed_at = now()
FROM claimable AS c
WHERE (i.dag_id, i.run_id, i.task_id, i.map_index, i.try_number)
    = (c.dag_id, c.run_id, c.task_id, c.map_index, c.try_number)
RETURNING i.dag_id, i.run_id, i.task_id, i.map_index, i.try_number, i.source, i.failed_at

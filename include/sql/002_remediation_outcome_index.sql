-- The latest outcome of a case is read for every neighbour the doctor retrieves
-- (queries/search_similar.sql, find_by_fingerprint.sql): without this index each read scans all
-- remediations. bench/retrieval: top-5 p95 134 ms -> 13 ms at 100k cases, 499 ms -> 8.8 ms at 1M.
-- It also serves the ON DELETE CASCADE of failure_cases.
CREATE INDEX IF NOT EXISTS remediations_case_latest
    ON doctor.remediations (case_id, acted_at DESC);

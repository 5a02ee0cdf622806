-- A denser HNSW graph: m 24 instead of pgvector's default 16. bench/retrieval at 1M cases, 2 cores:
-- recall@5 against exact search at hnsw.ef_search 160 is 0.962 with p95 8.9 ms (shared_buffers 6 GB);
-- with m 16 the same recall needed ef_search 320 and p95 18 ms. The doctor queries with
-- ef_search 160 (store.HNSW_EF_SEARCH). The rebuild runs once, inside the migration's transaction:
-- seconds for a knowledge base of thousands of cases, about 10 minutes at 1M.
DROP INDEX IF EXISTS doctor.failure_cases_embedding_hnsw;
CREATE INDEX failure_cases_embedding_hnsw
    ON doctor.failure_cases USING hnsw (embedding vector_cosine_ops) WITH (m = 24, ef_construction = 64);

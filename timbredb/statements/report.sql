-- name: report_vector_counts
-- params: {}
-- columns: space_id, modality, n
-- How many vectors each space holds, per modality.
SELECT space_id, 'audio' AS modality, count(*) AS n FROM audio_embeddings GROUP BY ALL
UNION ALL
SELECT space_id, 'text' AS modality, count(*) AS n FROM text_embeddings GROUP BY ALL;

-- name: report_batches
-- params: {}
-- columns: space_id, device, dtype, provenance
-- The provenance of every embedding batch, oldest first.
SELECT space_id, device, dtype, provenance FROM embedding_batches ORDER BY batch_id;

-- name: report_runs
-- params: {}
-- columns: run_id, command, timbredb_version, started_at, finished_at, summary
-- Every run that wrote to the store.
SELECT run_id, command, timbredb_version, started_at, finished_at, summary FROM runs ORDER BY run_id;

-- name: report_tables
-- params: {}
-- columns: table_name
-- The store's base tables.
SELECT table_name FROM information_schema.tables
WHERE table_schema = 'main' AND table_type = 'BASE TABLE' ORDER BY table_name;

-- name: ann_vectors_stream
-- params: {"space_id": ""}
-- columns: k, embedding
-- Every audio vector of a space in storage order, streamed in chunks to build an IVF index (no sort:
-- a sort of 10^6 vectors would hold them all in memory; rows find their place by their key).
SELECT clip_sha256 AS k, embedding FROM audio_embeddings WHERE space_id = $space_id;

-- name: ann_vectors_range
-- params: {"space_id": "", "lo": "", "hi": ""}
-- columns: k, embedding
-- The audio vectors of a space whose clip hash is in [$lo, $hi): a uniform sample, since the hashes are
-- sha256 (the IVF training sample and the held-back queries). Unordered: sorting the vectors would
-- hold them twice; the caller orders them by key.
SELECT clip_sha256 AS k, embedding FROM audio_embeddings
WHERE space_id = $space_id AND clip_sha256 >= $lo AND clip_sha256 < $hi;

-- name: ann_params_record
-- params: {"name": "", "index_type": "flat", "nlist": null, "nprobe": null, "recall_at_10": null, "recall_queries": null}
-- Record how an index searches and the recall@10 measured when it was built (migration 0008's columns).
UPDATE faiss_indexes SET index_type = $index_type, nlist = $nlist, nprobe = $nprobe, recall_at_10 = $recall_at_10,
       recall_queries = $recall_queries
WHERE index_name = $name;

-- name: ann_params_of
-- params: {"name": ""}
-- columns: index_type, nlist, nprobe, recall_at_10, recall_queries
-- How a recorded index searches, and its measured recall@10 (NULL for exact indexes).
SELECT coalesce(index_type, 'flat') AS index_type, nlist, nprobe, recall_at_10, recall_queries
FROM faiss_indexes WHERE index_name = $name;

-- name: memory_limit_reset
-- params: {}
-- DuckDB's memory limit back to its default (the Store sets no other).
RESET memory_limit;

-- name: memory_limit_set
-- params: {"limit": "1GB"}
-- Set DuckDB's memory limit of this connection (pages beyond it are evicted from its cache).
SET memory_limit = $limit;

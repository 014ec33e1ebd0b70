-- name: pairs_present
-- params: {"space_id": ""}
-- columns: clip_sha256_a, clip_sha256_b
-- The pairs of the registered batch _timbredb_batch(clip_sha256_a, clip_sha256_b) whose distances the
-- pairwise space already holds.
SELECT q.clip_sha256_a, q.clip_sha256_b
FROM _timbredb_batch q
JOIN pair_distances p ON p.space_id = $space_id AND p.clip_sha256_a = q.clip_sha256_a
                     AND p.clip_sha256_b = q.clip_sha256_b;

-- name: pairs_insert
-- params: {}
-- Insert the registered batch of (space_id, clip_sha256_a, clip_sha256_b, cosine_distance, l2_distance,
-- n_samples, batch_id); pairs already stored are left alone. Returns how many were inserted.
INSERT OR IGNORE INTO pair_distances (space_id, clip_sha256_a, clip_sha256_b, cosine_distance, l2_distance,
                                      n_samples, batch_id)
SELECT DISTINCT ON (clip_sha256_a, clip_sha256_b) * FROM _timbredb_batch;

-- name: pairs_of
-- params: {"space_id": ""}
-- columns: clip_sha256_a, clip_sha256_b, cosine_distance, l2_distance
-- The stored distances of the registered batch's pairs (clip_sha256_a, clip_sha256_b) in a pairwise space.
SELECT p.clip_sha256_a, p.clip_sha256_b, p.cosine_distance, p.l2_distance
FROM _timbredb_batch q
JOIN pair_distances p ON p.space_id = $space_id AND p.clip_sha256_a = q.clip_sha256_a
                     AND p.clip_sha256_b = q.clip_sha256_b;

-- name: pairs_clips
-- params: {"space_id": ""}
-- columns: clip_sha256
-- Every clip that takes part in a stored pair of a pairwise space (what `describe --clips` compares with).
SELECT DISTINCT clip_sha256 FROM (
    SELECT clip_sha256_a AS clip_sha256 FROM pair_distances WHERE space_id = $space_id
    UNION ALL
    SELECT clip_sha256_b FROM pair_distances WHERE space_id = $space_id
) ORDER BY clip_sha256;

-- name: pairs_count
-- params: {"space_id": null}
-- columns: n
-- How many pair distances a pairwise space holds (every space's when null).
SELECT count(*) AS n FROM pair_distances WHERE $space_id IS NULL OR space_id = $space_id;

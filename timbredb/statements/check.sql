-- name: check_audio_dim
-- params: {}
-- columns: n
-- Audio vectors whose length differs from their space's dim.
SELECT count(*) AS n FROM audio_embeddings e JOIN spaces s USING (space_id) WHERE len(e.embedding) <> s.dim;

-- name: check_text_dim
-- params: {}
-- columns: n
-- Text vectors whose length differs from their space's dim.
SELECT count(*) AS n FROM text_embeddings e JOIN spaces s USING (space_id) WHERE len(e.embedding) <> s.dim;

-- name: check_non_finite
-- params: {}
-- columns: n
-- Vectors with NaN or infinite values.
SELECT (SELECT count(*) FROM audio_embeddings WHERE len(list_filter(embedding, lambda x: isnan(x) OR isinf(x))) > 0)
     + (SELECT count(*) FROM text_embeddings WHERE len(list_filter(embedding, lambda x: isnan(x) OR isinf(x))) > 0) AS n;

-- name: check_audio_orphans
-- params: {}
-- columns: n
-- Audio vectors of clips that are not stored.
SELECT count(*) AS n FROM audio_embeddings e ANTI JOIN clips c USING (clip_sha256);

-- name: check_space_orphans
-- params: {}
-- columns: n
-- Vectors of spaces that are not stored.
SELECT (SELECT count(*) FROM audio_embeddings e ANTI JOIN spaces s USING (space_id))
     + (SELECT count(*) FROM text_embeddings e ANTI JOIN spaces s USING (space_id)) AS n;

-- name: check_batch_orphans
-- params: {}
-- columns: n
-- Vectors whose batch (provenance) is not stored.
SELECT (SELECT count(*) FROM audio_embeddings e ANTI JOIN embedding_batches b USING (batch_id))
     + (SELECT count(*) FROM text_embeddings e ANTI JOIN embedding_batches b USING (batch_id)) AS n;

-- name: check_prompt_orphans
-- params: {}
-- columns: n
-- Text vectors of unknown prompts.
SELECT count(*) AS n FROM text_embeddings t ANTI JOIN prompts p ON p.prompt = t.prompt;

-- name: check_file_orphans
-- params: {}
-- columns: n
-- Files pointing at clips that are not stored.
SELECT count(*) AS n FROM clip_files f ANTI JOIN clips c USING (clip_sha256);

-- name: check_rated_orphans
-- params: {}
-- columns: n
-- Rated instruments (CCMusic) whose recording is not stored.
SELECT count(*) AS n FROM instruments i ANTI JOIN clips c USING (clip_sha256);

-- name: check_dissim_orphans
-- params: {}
-- columns: n
-- timbremetrics stimuli whose audio is not stored.
SELECT count(*) AS n FROM dissimilarity_stimuli d ANTI JOIN clips c USING (clip_sha256);

-- name: check_variant_orphans
-- params: {}
-- columns: n
-- exp2 variants whose rendered audio is not stored.
SELECT count(*) AS n FROM variants v ANTI JOIN clips c USING (clip_sha256);

-- name: check_pair_orphans
-- params: {}
-- columns: n
-- Pair distances of clips or spaces that are not stored, or of spaces that are not pairwise.
SELECT count(*) AS n
FROM pair_distances p
LEFT JOIN spaces s USING (space_id)
LEFT JOIN clips ca ON ca.clip_sha256 = p.clip_sha256_a
LEFT JOIN clips cb ON cb.clip_sha256 = p.clip_sha256_b
WHERE s.space_id IS NULL OR ca.clip_sha256 IS NULL OR cb.clip_sha256 IS NULL
   OR coalesce(s.comparison, 'vector') <> 'pairwise';

-- name: check_pair_non_finite
-- params: {}
-- columns: n
-- Pair distances that are NaN, infinite or negative.
SELECT count(*) AS n FROM pair_distances
WHERE isnan(cosine_distance) OR isinf(cosine_distance) OR isnan(l2_distance) OR isinf(l2_distance)
   OR l2_distance < 0;

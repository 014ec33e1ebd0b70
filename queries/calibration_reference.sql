-- name: calibration_reference
-- params: {"template": "{}", "space_ids": null, "max_clips": 4096}
-- columns: space_id, descriptor, n_clips, mean_cosine, sd_cosine
-- The reference distribution `describe` calibrates against, for the analyses' --calibrated
-- option: per embedding space (the spaces in $space_ids; null = every space) and descriptor, the mean and
-- population SD of the cosine between the descriptor's text embedding (template $template;
-- 'ensemble' = ensemble_text_vectors) and the space's stored clips. The clips are the
-- first $max_clips in clip_sha256 order (a fixed pseudo-random sample, as in describe).
-- Clips or texts whose vectors are all zeros give no cosine and are not counted.
WITH ref AS (
    SELECT space_id, embedding
    FROM (
        SELECT space_id, embedding,
               row_number() OVER (PARTITION BY space_id ORDER BY clip_sha256) AS k
        FROM audio_embeddings
        WHERE ($space_ids IS NULL OR list_contains($space_ids, space_id))
    )
    WHERE k <= $max_clips
),
txt AS (
    SELECT t.space_id, p.descriptor, CAST(t.embedding AS DOUBLE[]) AS embedding
    FROM text_embeddings t
    JOIN prompts p ON p.prompt = t.prompt
    WHERE p.template = $template AND ($space_ids IS NULL OR list_contains($space_ids, t.space_id))
    UNION ALL
    SELECT space_id, descriptor, embedding
    FROM ensemble_text_vectors
    WHERE $template = 'ensemble' AND ($space_ids IS NULL OR list_contains($space_ids, space_id))
),
cos AS (
    SELECT r.space_id, t.descriptor,
           list_cosine_similarity(CAST(r.embedding AS DOUBLE[]), t.embedding) AS cosine
    FROM ref r
    JOIN txt t ON t.space_id = r.space_id
)
SELECT space_id,
       descriptor,
       CAST(count(cosine) FILTER (WHERE isfinite(cosine)) AS BIGINT) AS n_clips,
       avg(cosine) FILTER (WHERE isfinite(cosine)) AS mean_cosine,
       stddev_pop(cosine) FILTER (WHERE isfinite(cosine)) AS sd_cosine
FROM cos
GROUP BY space_id, descriptor
ORDER BY space_id, descriptor

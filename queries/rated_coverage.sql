-- name: rated_coverage
-- params: {"dataset": "ccmusic"}
-- columns: model, space_id, template, n_instruments, n_descriptors, n_pairs
-- What the rated-dataset analyses can use for $dataset: per embedding space and prompt
-- template (the 'ensemble' template included), how many stimuli and descriptors have a
-- similarity.
-- Columns: model (space label), space_id, template, n_instruments (stimuli with an audio
-- embedding), n_descriptors (descriptors with a text embedding), n_pairs (rows of rated_pairs).
SELECT model,
       space_id,
       template,
       CAST(count(DISTINCT instrument) AS BIGINT) AS n_instruments,
       CAST(count(DISTINCT descriptor) AS BIGINT) AS n_descriptors,
       CAST(count(*) AS BIGINT) AS n_pairs
FROM rated_pairs
WHERE dataset = $dataset
GROUP BY model, space_id, template
ORDER BY model, template

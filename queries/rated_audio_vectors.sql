-- name: rated_audio_vectors
-- params: {"dataset": "ccmusic", "space_ids": null}
-- columns: model, space_id, instrument, split, embedding
-- The audio embeddings of a rated dataset's stimuli ($dataset), per space (only those in
-- $space_ids when given), for the probe and axis analyses.
-- Columns: model (space label), space_id, instrument (the stimulus), split (its group),
-- embedding (the stored audio vector, as the model produced it).
SELECT s.label AS model,
       s.space_id,
       i.instrument,
       i.split,
       a.embedding
FROM instruments i
JOIN audio_embeddings a ON a.clip_sha256 = i.clip_sha256
JOIN spaces s ON s.space_id = a.space_id
WHERE i.dataset = $dataset
  AND ($space_ids IS NULL OR list_contains($space_ids, s.space_id))
ORDER BY s.label, s.space_id, i.split, i.instrument

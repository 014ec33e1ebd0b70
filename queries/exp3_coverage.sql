-- name: exp3_coverage
-- params: {"space_ids": null}
-- columns: model, model_id, space_id, dataset, n_stimuli, n_embedded, complete
-- Which embedding spaces have vectors for every stimulus of each stored study
-- (exp3 evaluates a model only on the studies it covers completely).
-- space_ids: the spaces to consider (resolved from --model by timbredb.spaces.match); null = every space.
-- Columns: model (space label, what --model accepts); model_id; space_id; dataset;
-- n_stimuli (N of the study); n_embedded (stimuli with a vector in the space);
-- complete (n_embedded = n_stimuli).
SELECT sp.label AS model,
       sp.model_id,
       sp.space_id,
       d.dataset,
       d.n_stimuli::INTEGER AS n_stimuli,
       count(e.clip_sha256)::INTEGER AS n_embedded,
       count(e.clip_sha256) = d.n_stimuli AS complete
FROM spaces sp
CROSS JOIN dissimilarity_datasets d
JOIN dissimilarity_stimuli s ON s.dataset = d.dataset
LEFT JOIN audio_embeddings e ON e.space_id = sp.space_id AND e.clip_sha256 = s.clip_sha256
WHERE list_contains(sp.modalities, 'audio')
  AND ($space_ids IS NULL OR list_contains($space_ids, sp.space_id))
GROUP BY sp.label, sp.model_id, sp.space_id, d.dataset, d.n_stimuli
ORDER BY sp.label, d.dataset;

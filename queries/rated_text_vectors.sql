-- name: rated_text_vectors
-- params: {"template": "{}", "space_ids": null}
-- columns: model, space_id, descriptor, template, embedding
-- The text embeddings of every descriptor for one prompt template ($template; 'ensemble'
-- = the mean of the word's L2-normalised template vectors, see ensemble_text_vectors),
-- per space (only those in $space_ids when given).
-- Columns: model (space label), space_id, descriptor, template, embedding (DOUBLE[]).
SELECT s.label AS model, s.space_id, p.descriptor, p.template, CAST(t.embedding AS DOUBLE[]) AS embedding
FROM text_embeddings t
JOIN prompts p ON p.prompt = t.prompt
JOIN spaces s ON s.space_id = t.space_id
WHERE p.template = $template
  AND ($space_ids IS NULL OR list_contains($space_ids, s.space_id))
UNION ALL
SELECT s.label AS model, s.space_id, e.descriptor, e.template, e.embedding
FROM ensemble_text_vectors e
JOIN spaces s ON s.space_id = e.space_id
WHERE $template = 'ensemble'
  AND ($space_ids IS NULL OR list_contains($space_ids, s.space_id))
ORDER BY model, space_id, descriptor

-- name: prompt_templates
-- params: {}
-- columns: model, space_id, origin, template, n_prompts
-- Every prompt template stored for a model: the templates of a space's text embeddings
-- (local) and of imported exp2 results (imported).
-- Columns: model (space label or imported name), space_id (NULL when imported), origin
-- ('local' | 'imported'), template, n_prompts (distinct prompts of that template).
SELECT model, space_id, 'local' AS origin, template, CAST(count(DISTINCT prompt) AS BIGINT) AS n_prompts
FROM text_vectors
GROUP BY model, space_id, template
UNION ALL
SELECT model, NULL AS space_id, 'imported' AS origin, template, CAST(count(DISTINCT prompt) AS BIGINT) AS n_prompts
FROM exp2_imported
GROUP BY model, template
ORDER BY model, template

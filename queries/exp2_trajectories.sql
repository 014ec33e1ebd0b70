-- name: exp2_trajectories
-- params: {"models": null, "template": "a {} sound", "renderer": null}
-- columns: model, effect, source, descriptor, template, prompt, strength, original_cosine, variant_cosine, delta, origin, renderer_version
-- Experiment 2 input: the points of every trajectory (model x effect x source x
-- descriptor) for one prompt template ($template), optionally only the models in
-- $models (a list of space labels / imported model names; null = every model),
-- from one renderer ($renderer; null = the renderer version the latest
-- `ingest audealize` used). Imported results are always included.
-- Columns: model (space label or imported name), effect ('eq' | 'reverb'), source
-- (guitar, piano, drums, mixture, file stem), descriptor, template, prompt,
-- strength (s in (0, 1]), original_cosine (cos(original, prompt)), variant_cosine
-- (cos(variant at s, prompt)), delta (variant_cosine - original_cosine),
-- origin ('local' | 'imported'), renderer_version (NULL when imported).
-- $template 'ensemble' reads exp2_ensemble_trajectories (the mean of each word's
-- normalised template vectors; local variants only).
WITH latest AS (
    SELECT renderer_version FROM variants ORDER BY seen_at DESC, created_at DESC, renderer_version LIMIT 1
),
points AS (
    SELECT * FROM exp2_trajectories
    UNION ALL
    SELECT * FROM exp2_ensemble_trajectories
)
SELECT model,
       effect,
       source,
       descriptor,
       template,
       prompt,
       CAST(strength AS DOUBLE) AS strength,
       CAST(original_cosine AS DOUBLE) AS original_cosine,
       CAST(variant_cosine AS DOUBLE) AS variant_cosine,
       CAST(delta AS DOUBLE) AS delta,
       origin,
       renderer_version
FROM points
WHERE template = $template
  AND ($models IS NULL OR list_contains($models, model))
  AND (origin = 'imported' OR renderer_version = coalesce($renderer, (SELECT renderer_version FROM latest)))
ORDER BY model, effect, source, descriptor, strength

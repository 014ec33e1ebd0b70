-- name: exp2_trajectories
-- params: {"models": null, "template": "a {} sound", "renderer": null, "effects": null}
-- columns: model, effect, source, descriptor, template, prompt, strength, original_cosine, variant_cosine, delta, origin, renderer_version, dataset
-- Experiment 2 input: the points of every trajectory (model x effect x source x
-- descriptor) for one prompt template ($template), optionally only the models in
-- $models (a list of space labels / imported model names; null = every model) and
-- the effects in $effects (a list of effect labels; null = every effect), from one
-- renderer ($renderer; null = for each descriptor dataset, the renderer version its
-- latest ingest used). Imported results are always included.
-- Columns: model (space label or imported name), effect ('eq' | 'reverb' |
-- 'socialfx-compression' | 'safe-eq' | 'safe-compression' | 'safe-distortion'), source
-- (guitar, piano, drums, mixture, file stem), descriptor, template, prompt,
-- strength (s in (0, 1]), original_cosine (cos(original, prompt)), variant_cosine
-- (cos(variant at s, prompt)), delta (variant_cosine - original_cosine),
-- origin ('local' | 'imported'), renderer_version (NULL when imported), dataset
-- (where the effect's descriptor settings come from: audealize | socialfx | safedb).
-- $template 'ensemble' reads exp2_ensemble_trajectories (the mean of each word's
-- normalised template vectors; local variants only). $effects: a list of effect
-- labels (null = every effect).
WITH latest AS (
    SELECT DISTINCT ON (dataset) dataset, renderer_version
    FROM variants
    ORDER BY dataset, seen_at DESC, created_at DESC, renderer_version
),
points AS (
    SELECT * FROM exp2_trajectories
    UNION ALL
    SELECT * FROM exp2_ensemble_trajectories
)
SELECT t.model,
       t.effect,
       t.source,
       t.descriptor,
       t.template,
       t.prompt,
       CAST(t.strength AS DOUBLE) AS strength,
       CAST(t.original_cosine AS DOUBLE) AS original_cosine,
       CAST(t.variant_cosine AS DOUBLE) AS variant_cosine,
       CAST(t.delta AS DOUBLE) AS delta,
       t.origin,
       t.renderer_version,
       t.dataset
FROM points t
WHERE t.template = $template
  AND ($models IS NULL OR list_contains($models, t.model))
  AND ($effects IS NULL OR list_contains($effects, t.effect))
  AND (t.origin = 'imported'
       OR t.renderer_version = coalesce($renderer, (SELECT l.renderer_version FROM latest l WHERE l.dataset = t.dataset)))
ORDER BY t.model, t.effect, t.source, t.descriptor, t.strength

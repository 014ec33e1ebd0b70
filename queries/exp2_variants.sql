-- name: exp2_variants
-- params: {"renderer": null}
-- columns: source, source_kind, effect, descriptor, strength, renderer_version, clip_sha256, duration_s, tail_s, params, n_models, dataset
-- Every rendered Experiment 2 variant with its source, optionally from one renderer
-- version ($renderer; null = all). Columns: source (label), source_kind ('dataset' |
-- 'mixture' | 'user'), effect ('original', or an effect label: 'eq', 'reverb', 'socialfx-compression',
-- 'safe-eq', 'safe-compression', 'safe-distortion'), descriptor ('' for the
-- original), strength (0 = original), renderer_version, clip_sha256 (the rendered
-- clip), duration_s (rendered length, tail included), tail_s (tail appended before
-- any trim), params (effect parameters, JSON), n_models (spaces holding its vector), dataset
-- (the descriptor dataset: audealize | socialfx | safedb).
SELECT src.label AS source,
       src.kind AS source_kind,
       v.effect,
       v.descriptor,
       CAST(v.strength AS DOUBLE) AS strength,
       v.renderer_version,
       v.clip_sha256,
       v.duration_s,
       v.tail_s,
       CAST(v.params AS VARCHAR) AS params,
       (SELECT count(*) FROM audio_embeddings a WHERE a.clip_sha256 = v.clip_sha256) AS n_models,
       v.dataset
FROM variants v
JOIN exp2_sources src ON src.source_sha256 = v.source_sha256
WHERE ($renderer IS NULL OR v.renderer_version = $renderer)
ORDER BY source, v.dataset, v.effect, v.descriptor, strength, v.renderer_version

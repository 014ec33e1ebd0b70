-- name: finetune_points
-- params: {"space_id": "", "effects": [], "renderer": null, "template": "a {} sound"}
-- columns: source, source_sha256, source_kind, dataset, effect, descriptor, strength, renderer_version, clip_sha256, original_sha256, prompt, has_text
-- The exp2 variants a fine-tuning run can learn from in one space: every rendered variant
-- of the effects in $effects (from $renderer; null = per descriptor dataset, the renderer
-- version its latest ingest used, as `query exp2`) whose clip and whose source's original
-- both have an audio vector in $space_id. prompt is the word rendered with $template
-- (NULL when that prompt is not stored); has_text says whether the space holds its text
-- vector. One row per (source, effect, descriptor, strength), ordered so.
WITH latest AS (
    SELECT DISTINCT ON (dataset) dataset, renderer_version
    FROM variants
    ORDER BY dataset, seen_at DESC, created_at DESC, renderer_version
)
SELECT src.label AS source,
       v.source_sha256,
       src.kind AS source_kind,
       v.dataset,
       v.effect,
       v.descriptor,
       CAST(v.strength AS DOUBLE) AS strength,
       v.renderer_version,
       v.clip_sha256,
       o.clip_sha256 AS original_sha256,
       p.prompt,
       EXISTS (SELECT 1 FROM text_embeddings t WHERE t.space_id = $space_id AND t.prompt = p.prompt) AS has_text
FROM variants v
JOIN variants o
  ON o.source_sha256 = v.source_sha256 AND o.renderer_version = v.renderer_version
 AND o.dataset = v.dataset AND o.effect = 'original'
JOIN exp2_sources src ON src.source_sha256 = v.source_sha256
LEFT JOIN prompts p ON p.descriptor = v.descriptor AND p.template = $template
WHERE v.effect <> 'original'
  AND list_contains($effects, v.effect)
  AND v.renderer_version = coalesce($renderer, (SELECT l.renderer_version FROM latest l WHERE l.dataset = v.dataset))
  AND EXISTS (SELECT 1 FROM audio_embeddings a WHERE a.space_id = $space_id AND a.clip_sha256 = v.clip_sha256)
  AND EXISTS (SELECT 1 FROM audio_embeddings a WHERE a.space_id = $space_id AND a.clip_sha256 = o.clip_sha256)
ORDER BY source, v.effect, v.descriptor, strength;

-- name: text_vectors_all
-- params: {"space_id": ""}
-- columns: k, embedding
-- Every text vector of a space, ordered by prompt.
SELECT prompt AS k, embedding FROM text_embeddings WHERE space_id = $space_id ORDER BY k;

-- name: finetune_insert
-- params: {"space_id": "", "label": "", "base_space_id": "", "base_label": "", "method": "adapter", "seed": 0, "config": "{}", "split": "{}", "train_data_sha256": "", "weights": null, "weights_sha256": "", "history": "[]", "seconds": 0.0, "run_id": null}
-- Record what made a fine-tuned space (its weights included).
INSERT INTO finetunes (space_id, label, base_space_id, base_label, method, seed, config, split, train_data_sha256,
                       weights, weights_sha256, history, seconds, run_id)
VALUES ($space_id, $label, $base_space_id, $base_label, $method, $seed, $config, $split, $train_data_sha256,
        $weights, $weights_sha256, $history, $seconds, $run_id);

-- name: finetune_of
-- params: {"key": ""}
-- columns: space_id, label, base_space_id, base_label, method, seed, config, split, train_data_sha256, weights, weights_sha256, history, seconds, run_id, created_at
-- The fine-tuning record of the space whose space_id or label is $key (no row: none).
SELECT space_id, label, base_space_id, base_label, method, seed, CAST(config AS VARCHAR) AS config,
       CAST(split AS VARCHAR) AS split, train_data_sha256, weights, weights_sha256, CAST(history AS VARCHAR) AS history,
       seconds, run_id, created_at
FROM finetunes WHERE space_id = $key OR label = $key;

-- name: finetunes_all
-- params: {}
-- columns: space_id, label, base_space_id, base_label, method, seed, train_data_sha256, weights_sha256, seconds, created_at
-- Every fine-tuned space (without weights), oldest first.
SELECT space_id, label, base_space_id, base_label, method, seed, train_data_sha256, weights_sha256, seconds, created_at
FROM finetunes ORDER BY created_at, label;

-- name: clip_variant_rows
-- params: {"hashes": []}
-- columns: clip_sha256, source_sha256, dataset, effect, descriptor, strength, renderer_version, params
-- How the clips in $hashes were rendered, where they are exp2 variants (or originals): one
-- row per clip (the first key in (dataset, effect, descriptor, strength) order when the same
-- audio has several), with its effect parameters as JSON text.
SELECT DISTINCT ON (clip_sha256) clip_sha256, source_sha256, dataset, effect, descriptor,
       CAST(strength AS DOUBLE) AS strength, renderer_version, CAST(params AS VARCHAR) AS params
FROM variants
WHERE list_contains($hashes, clip_sha256)
ORDER BY clip_sha256, dataset, effect, descriptor, strength, renderer_version;

-- name: exp2_sources_all
-- params: {}
-- columns: source_sha256, label, kind, origin, sample_rate, channels, duration_s
-- Every stored exp2 source, by label.
SELECT source_sha256, label, kind, origin, sample_rate, channels, duration_s FROM exp2_sources ORDER BY label;

-- name: check_finetune_orphans
-- params: {}
-- columns: n
-- Fine-tuning records whose tuned space or base space is not stored, or whose weights no
-- longer match their recorded sha256.
SELECT count(*) AS n
FROM finetunes f
LEFT JOIN spaces s ON s.space_id = f.space_id
LEFT JOIN spaces b ON b.space_id = f.base_space_id
WHERE s.space_id IS NULL OR b.space_id IS NULL OR sha256(f.weights) <> f.weights_sha256;

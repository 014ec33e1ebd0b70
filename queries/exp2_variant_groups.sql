-- name: exp2_variant_groups
-- params: {"renderer": null}
-- columns: effect, source, descriptor, renderer_version, variant_group
-- Which rendered trajectories are the same audio: one row per effect x source x descriptor x
-- renderer version ($renderer; null = all) with variant_group, the clip hashes of its
-- variants in strength order. Words whose effect parameters are identical (several
-- Audealize reverb words) share a variant_group; `query exp2 --distinct-variants` counts
-- each group once. Columns: effect, source (label), descriptor, renderer_version,
-- variant_group (comma-joined clip_sha256 values).
SELECT v.effect,
       src.label AS source,
       v.descriptor,
       v.renderer_version,
       string_agg(v.clip_sha256, ',' ORDER BY v.strength) AS variant_group
FROM variants v
JOIN exp2_sources src ON src.source_sha256 = v.source_sha256
WHERE v.effect <> 'original'
  AND ($renderer IS NULL OR v.renderer_version = $renderer)
GROUP BY v.effect, src.label, v.descriptor, v.renderer_version
ORDER BY v.effect, source, v.descriptor, v.renderer_version

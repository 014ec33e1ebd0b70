-- name: rated_delete_ratings
-- params: {"dataset": ""}
-- Remove a rated dataset's ratings (before it is replaced).
DELETE FROM ratings WHERE dataset = $dataset;

-- name: rated_delete_instruments
-- params: {"dataset": ""}
-- Remove a rated dataset's stimuli (before it is replaced).
DELETE FROM instruments WHERE dataset = $dataset;

-- name: rated_insert_instrument
-- params: {"dataset": "", "instrument": "", "split": "", "clip_sha256": "", "source": "", "run_id": null}
-- One rated stimulus (instrument) with its group (split) and recording.
INSERT INTO instruments (dataset, instrument, split, clip_sha256, source, run_id)
VALUES ($dataset, $instrument, $split, $clip_sha256, $source, $run_id);

-- name: rated_insert_rating
-- params: {"dataset": "", "instrument": "", "descriptor": "", "column_name": "", "rating": 0.0}
-- One mean rating of a stimulus on a descriptor.
INSERT INTO ratings (dataset, instrument, descriptor, column_name, rating)
VALUES ($dataset, $instrument, $descriptor, $column_name, $rating);

-- name: ratings_count
-- params: {"dataset": ""}
-- columns: n
-- How many ratings a rated dataset holds.
SELECT count(*) AS n FROM ratings WHERE dataset = $dataset;

-- name: dissim_delete_ratings
-- params: {"dataset": ""}
-- Remove a dissimilarity study's ratings (before it is replaced).
DELETE FROM dissimilarity_ratings WHERE dataset = $dataset;

-- name: dissim_delete_stimuli
-- params: {"dataset": ""}
-- Remove a dissimilarity study's stimuli.
DELETE FROM dissimilarity_stimuli WHERE dataset = $dataset;

-- name: dissim_delete_dataset
-- params: {"dataset": ""}
-- Remove a dissimilarity study's record.
DELETE FROM dissimilarity_datasets WHERE dataset = $dataset;

-- name: dissim_insert_dataset
-- params: {"dataset": "", "collection": "", "n_stimuli": 0, "matrix_path": "", "matrix_sha256": "", "run_id": null}
-- One dissimilarity study.
INSERT INTO dissimilarity_datasets (dataset, collection, n_stimuli, matrix_path, matrix_sha256, run_id)
VALUES ($dataset, $collection, $n_stimuli, $matrix_path, $matrix_sha256, $run_id);

-- name: dissim_insert_stimulus
-- params: {"dataset": "", "stimulus_index": 0, "file": "", "clip_sha256": ""}
-- One stimulus of a study, in matrix order.
INSERT INTO dissimilarity_stimuli (dataset, stimulus_index, file, clip_sha256)
VALUES ($dataset, $stimulus_index, $file, $clip_sha256);

-- name: dissim_insert_rating
-- params: {"dataset": "", "i": 0, "j": 1, "dissimilarity": 0.0}
-- One human dissimilarity of a stimulus pair i < j.
INSERT INTO dissimilarity_ratings (dataset, i, j, dissimilarity) VALUES ($dataset, $i, $j, $dissimilarity);

-- name: exp2_source_labels
-- params: {}
-- columns: source_sha256, label
-- Every stored exp2 source and its label.
SELECT source_sha256, label FROM exp2_sources;

-- name: exp2_source_add
-- params: {"sha": "", "label": "", "kind": "user", "origin": "", "sample_rate": 0, "channels": 1, "duration_s": 0.0}
-- Record an exp2 source (kept if present).
INSERT OR IGNORE INTO exp2_sources (source_sha256, label, kind, origin, sample_rate, channels, duration_s)
VALUES ($sha, $label, $kind, $origin, $sample_rate, $channels, $duration_s);

-- name: exp2_variants_touch
-- params: {"sha": "", "version": "", "dataset": "audealize"}
-- Mark a source's variants of one renderer and descriptor dataset as used by this ingest.
UPDATE variants SET seen_at = now() WHERE source_sha256 = $sha AND renderer_version = $version AND dataset = $dataset;

-- name: exp2_variants_of
-- params: {"sha": "", "version": "", "dataset": "audealize"}
-- columns: effect, descriptor, strength, clip_sha256
-- The stored variants of a source from one renderer and descriptor dataset.
SELECT effect, descriptor, strength, clip_sha256 FROM variants
WHERE source_sha256 = $sha AND renderer_version = $version AND dataset = $dataset;

-- name: exp2_variant_upsert
-- params: {"source_sha256": "", "dataset": "audealize", "effect": "", "descriptor": "", "strength": 0.0, "renderer_version": "", "clip_sha256": "", "params": "{}", "duration_s": 0.0, "tail_s": 0.0, "run_id": null}
-- Record a rendered variant; a key rendered before now points at this render.
INSERT INTO variants (source_sha256, dataset, effect, descriptor, strength, renderer_version, clip_sha256, params,
                      duration_s, tail_s, run_id)
VALUES ($source_sha256, $dataset, $effect, $descriptor, $strength, $renderer_version, $clip_sha256, $params,
        $duration_s, $tail_s, $run_id)
ON CONFLICT (source_sha256, dataset, effect, descriptor, strength, renderer_version) DO UPDATE SET
    clip_sha256 = excluded.clip_sha256, params = excluded.params, duration_s = excluded.duration_s,
    tail_s = excluded.tail_s, run_id = excluded.run_id, seen_at = now();

-- name: exp2_variants_count
-- params: {"renderer": null}
-- columns: n
-- How many variants are stored (of one renderer version, or of all when null).
SELECT count(*) AS n FROM variants WHERE $renderer IS NULL OR renderer_version = $renderer;

-- name: exp2_renderer_versions
-- params: {}
-- columns: renderer_version
-- The renderer versions of the stored variants.
SELECT DISTINCT renderer_version FROM variants ORDER BY 1;

-- name: exp2_imported_models
-- params: {}
-- columns: model
-- The names imported exp2 results are filed under.
SELECT DISTINCT model FROM exp2_imported ORDER BY 1;

-- name: exp2_imported_count
-- params: {"model": null}
-- columns: n
-- How many imported exp2 rows are filed under a name (or under any name when null).
SELECT count(*) AS n FROM exp2_imported WHERE $model IS NULL OR model = $model;

-- name: exp2_imported_delete
-- params: {"model": ""}
-- Remove the rows filed under a name (before a re-import replaces them).
DELETE FROM exp2_imported WHERE model = $model;

-- name: exp2_imported_insert
-- params: {}
-- The imported exp2 conditions of the registered batch (validated by timbredb.importers.exp2), in bulk.
INSERT INTO exp2_imported (model, dataset, effect, source, descriptor, template, prompt, strength, original_cosine,
                           variant_cosine, delta, file, file_sha256, line)
SELECT model, dataset, effect, source, descriptor, template, prompt, strength, original_cosine, variant_cosine,
       delta, file, file_sha256, line
FROM _timbredb_batch;

-- name: exp2_effects_stored
-- params: {}
-- columns: dataset, effect, n_variants
-- The effects of the stored variants (the original excluded) and imported rows, with their descriptor dataset.
SELECT dataset, effect, count(*) AS n_variants FROM (
    SELECT dataset, effect FROM variants WHERE effect <> 'original'
    UNION ALL
    SELECT dataset, effect FROM exp2_imported
) GROUP BY ALL ORDER BY dataset, effect;

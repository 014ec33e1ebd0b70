-- name: export_spaces
-- params: {"space_ids": []}
-- columns: space_id, label, model_id, family, checkpoint, checkpoint_sha256, policy, dim, sample_rate, similarity, modalities, created_at, comparison
-- The spaces in $space_ids, for a Parquet export.
SELECT space_id, label, model_id, family, checkpoint, checkpoint_sha256, policy::VARCHAR AS policy, dim, sample_rate,
       similarity, modalities, created_at, comparison
FROM spaces WHERE list_contains($space_ids, space_id) ORDER BY space_id;

-- name: export_finetunes
-- params: {"space_ids": []}
-- columns: space_id, label, base_space_id, base_label, method, seed, config, split, train_data_sha256, weights, weights_sha256, history, seconds, created_at
-- The fine-tuning records (weights included) of the spaces in $space_ids.
SELECT space_id, label, base_space_id, base_label, method, seed, config::VARCHAR AS config, split::VARCHAR AS split,
       train_data_sha256, weights, weights_sha256, history::VARCHAR AS history, seconds, created_at
FROM finetunes WHERE list_contains($space_ids, space_id) ORDER BY space_id;

-- name: export_clips
-- params: {"all_clips": true, "space_ids": [], "results": false}
-- columns: clip_sha256, source_path, duration_s, channels, sample_rate, n_frames, added_at
-- Every clip ($all_clips), or those the exported rows refer to: audio vectors and pair distances of
-- $space_ids, and (with $results) rated instruments, dissimilarity stimuli and exp2 variants.
SELECT clip_sha256, source_path, duration_s, channels, sample_rate, n_frames, added_at
FROM clips c
WHERE $all_clips
   OR clip_sha256 IN (SELECT clip_sha256 FROM audio_embeddings WHERE list_contains($space_ids, space_id))
   OR clip_sha256 IN (SELECT clip_sha256_a FROM pair_distances WHERE list_contains($space_ids, space_id))
   OR clip_sha256 IN (SELECT clip_sha256_b FROM pair_distances WHERE list_contains($space_ids, space_id))
   OR ($results AND (clip_sha256 IN (SELECT clip_sha256 FROM instruments)
                     OR clip_sha256 IN (SELECT clip_sha256 FROM dissimilarity_stimuli)
                     OR clip_sha256 IN (SELECT clip_sha256 FROM variants)))
ORDER BY clip_sha256;

-- name: export_clip_files
-- params: {}
-- columns: path, clip_sha256, size_bytes, mtime_ns, seen_at
-- Every file a clip was found at.
SELECT path, clip_sha256, size_bytes, mtime_ns, seen_at FROM clip_files ORDER BY path;

-- name: export_prompts
-- params: {}
-- columns: descriptor, template, prompt
-- Every prompt.
SELECT descriptor, template, prompt FROM prompts ORDER BY descriptor, template;

-- name: export_vocabularies
-- params: {}
-- columns: vocabulary, descriptor, position
-- Every stored word list.
SELECT vocabulary, descriptor, position FROM vocabularies ORDER BY vocabulary, position;

-- name: export_audio_embeddings
-- params: {"space_id": ""}
-- columns: space_id, clip_sha256, embedding, batch_key, batch_n_items, device, dtype, provenance, batch_created_at
-- The audio vectors of one space with their batch's provenance. A batch computed here gets a key
-- derived from what identifies it in this store (space, id, time, provenance), stable across exports;
-- an imported batch keeps the key it came with. Insertion order, not sorted: a sort of 10^6 vectors
-- would hold them all in memory.
SELECT e.space_id, e.clip_sha256, e.embedding,
       coalesce(b.batch_key, left(sha256(concat_ws('|', b.space_id, b.modality, b.batch_id::VARCHAR, b.created_at::VARCHAR,
                                                  b.provenance::VARCHAR)), 32)) AS batch_key,
       b.n_items AS batch_n_items, b.device, b.dtype, b.provenance::VARCHAR AS provenance, b.created_at AS batch_created_at
FROM audio_embeddings e JOIN embedding_batches b USING (batch_id)
WHERE e.space_id = $space_id;

-- name: export_text_embeddings
-- params: {"space_id": ""}
-- columns: space_id, prompt, embedding, batch_key, batch_n_items, device, dtype, provenance, batch_created_at
-- The text vectors of one space with their batch's provenance (batch keys as for audio).
SELECT e.space_id, e.prompt, e.embedding,
       coalesce(b.batch_key, left(sha256(concat_ws('|', b.space_id, b.modality, b.batch_id::VARCHAR, b.created_at::VARCHAR,
                                                  b.provenance::VARCHAR)), 32)) AS batch_key,
       b.n_items AS batch_n_items, b.device, b.dtype, b.provenance::VARCHAR AS provenance, b.created_at AS batch_created_at
FROM text_embeddings e JOIN embedding_batches b USING (batch_id)
WHERE e.space_id = $space_id
ORDER BY e.prompt;

-- name: export_pair_distances
-- params: {"space_id": ""}
-- columns: space_id, clip_sha256_a, clip_sha256_b, cosine_distance, l2_distance, n_samples, batch_key, batch_n_items, device, dtype, provenance, batch_created_at
-- The pair distances of one (pairwise) space with their batch's provenance (batch keys as for audio).
SELECT p.space_id, p.clip_sha256_a, p.clip_sha256_b, p.cosine_distance, p.l2_distance, p.n_samples,
       coalesce(b.batch_key, left(sha256(concat_ws('|', b.space_id, b.modality, b.batch_id::VARCHAR, b.created_at::VARCHAR,
                                                  b.provenance::VARCHAR)), 32)) AS batch_key,
       b.n_items AS batch_n_items, b.device, b.dtype, b.provenance::VARCHAR AS provenance, b.created_at AS batch_created_at
FROM pair_distances p JOIN embedding_batches b USING (batch_id)
WHERE p.space_id = $space_id
ORDER BY p.clip_sha256_a, p.clip_sha256_b;

-- name: export_count_vectors
-- params: {"space_id": ""}
-- columns: audio, text, pairs
-- How many audio vectors, text vectors and pair distances a space holds (an export must write each of them).
SELECT (SELECT count(*) FROM audio_embeddings WHERE space_id = $space_id) AS audio,
       (SELECT count(*) FROM text_embeddings WHERE space_id = $space_id) AS text,
       (SELECT count(*) FROM pair_distances WHERE space_id = $space_id) AS pairs;

-- name: export_instruments
-- params: {}
-- columns: dataset, instrument, split, clip_sha256, source
-- Every rated instrument (exp1).
SELECT dataset, instrument, split, clip_sha256, source FROM instruments ORDER BY dataset, instrument;

-- name: export_ratings
-- params: {}
-- columns: dataset, instrument, descriptor, column_name, rating
-- Every mean rating (exp1).
SELECT dataset, instrument, descriptor, column_name, rating FROM ratings ORDER BY dataset, instrument, descriptor;

-- name: export_listener_ratings
-- params: {}
-- columns: dataset, instrument, descriptor, listener, rating, source
-- Every per-listener rating (noise ceilings).
SELECT dataset, instrument, descriptor, listener, rating, source FROM listener_ratings
ORDER BY dataset, instrument, descriptor, listener;

-- name: export_rating_sds
-- params: {}
-- columns: dataset, instrument, descriptor, sd, n_listeners, source
-- Every published listener SD of a stimulus on a descriptor (noise ceilings).
SELECT dataset, instrument, descriptor, sd, n_listeners, source FROM rating_sds ORDER BY dataset, instrument, descriptor;

-- name: export_exp1_imported
-- params: {}
-- columns: dataset, model, model_id, level, split, unit, pearson_r, spearman_rho, file, file_sha256, line, imported_at
-- Every exp1 result imported from elsewhere.
SELECT dataset, model, model_id, level, split, unit, pearson_r, spearman_rho, file, file_sha256, line, imported_at
FROM exp1_imported ORDER BY dataset, model, level, split, unit;

-- name: export_dissimilarity_datasets
-- params: {}
-- columns: dataset, collection, n_stimuli, matrix_path, matrix_sha256, added_at
-- Every dissimilarity study (exp3).
SELECT dataset, collection, n_stimuli, matrix_path, matrix_sha256, added_at FROM dissimilarity_datasets ORDER BY dataset;

-- name: export_dissimilarity_stimuli
-- params: {}
-- columns: dataset, stimulus_index, file, clip_sha256
-- Every stimulus of every study, in matrix order (exp3).
SELECT dataset, stimulus_index, file, clip_sha256 FROM dissimilarity_stimuli ORDER BY dataset, stimulus_index;

-- name: export_dissimilarity_ratings
-- params: {}
-- columns: dataset, i, j, dissimilarity
-- Every human dissimilarity (exp3).
SELECT dataset, i, j, dissimilarity FROM dissimilarity_ratings ORDER BY dataset, i, j;

-- name: export_exp2_sources
-- params: {}
-- columns: source_sha256, label, kind, origin, sample_rate, channels, duration_s, added_at
-- Every exp2 source.
SELECT source_sha256, label, kind, origin, sample_rate, channels, duration_s, added_at FROM exp2_sources ORDER BY source_sha256;

-- name: export_variants
-- params: {}
-- columns: source_sha256, dataset, effect, descriptor, strength, renderer_version, clip_sha256, params, duration_s, tail_s, created_at, seen_at
-- Every rendered variant (exp2), with the times that decide which renderer the analysis uses.
SELECT source_sha256, dataset, effect, descriptor, strength, renderer_version, clip_sha256, params::VARCHAR AS params,
       duration_s, tail_s, created_at, seen_at
FROM variants ORDER BY source_sha256, dataset, effect, descriptor, strength, renderer_version;

-- name: export_exp2_imported
-- params: {}
-- columns: model, dataset, effect, source, descriptor, template, prompt, strength, original_cosine, variant_cosine, delta, file, file_sha256, line, imported_at
-- Every exp2 row imported from elsewhere.
SELECT model, dataset, effect, source, descriptor, template, prompt, strength, original_cosine, variant_cosine, delta, file,
       file_sha256, line, imported_at
FROM exp2_imported ORDER BY model, dataset, effect, source, descriptor, prompt, strength;

-- ---------------------------------------------------------------- import: spaces

-- name: import_spaces_conflicts
-- params: {}
-- columns: key, differs
-- Spaces of the registered batch stored (or repeated in the batch) with other values.
SELECT b.space_id AS key,
       concat_ws(', ', CASE WHEN b.label IS DISTINCT FROM s.label THEN 'label' END,
                 CASE WHEN b.model_id IS DISTINCT FROM s.model_id THEN 'model_id' END,
                 CASE WHEN b.family IS DISTINCT FROM s.family THEN 'family' END,
                 CASE WHEN b.checkpoint IS DISTINCT FROM s.checkpoint THEN 'checkpoint' END,
                 CASE WHEN b.checkpoint_sha256 <> s.checkpoint_sha256 THEN 'checkpoint_sha256' END,
                 CASE WHEN b.policy IS DISTINCT FROM s.policy::VARCHAR THEN 'policy' END,
                 CASE WHEN b.dim IS DISTINCT FROM s.dim THEN 'dim' END,
                 CASE WHEN b.sample_rate IS DISTINCT FROM s.sample_rate THEN 'sample_rate' END,
                 CASE WHEN b.similarity IS DISTINCT FROM s.similarity THEN 'similarity' END,
                 CASE WHEN b.modalities IS DISTINCT FROM s.modalities THEN 'modalities' END,
                 CASE WHEN coalesce(b.comparison, CASE WHEN b.dim = 0 THEN 'pairwise' ELSE 'vector' END)
                           IS DISTINCT FROM coalesce(s.comparison, 'vector') THEN 'comparison' END) AS differs
FROM _timbredb_batch b JOIN spaces s USING (space_id)
WHERE differs <> ''
UNION ALL
SELECT space_id, 'repeated in the file with other values'
FROM (SELECT DISTINCT space_id, label, model_id, family, checkpoint, policy, dim, sample_rate, similarity, modalities, comparison
      FROM _timbredb_batch)
GROUP BY space_id HAVING count(*) > 1
LIMIT 1;

-- name: import_spaces_merge
-- params: {}
-- Insert the registered batch's spaces that are not stored. A file without `comparison` (written before
-- migration 0007, or by the Ray engine) is read as the migration did: pairwise spaces are those of dim 0.
INSERT OR IGNORE INTO spaces (space_id, label, model_id, family, checkpoint, checkpoint_sha256, policy, dim, sample_rate,
                              similarity, modalities, created_at, comparison)
SELECT DISTINCT ON (space_id) space_id, label, model_id, family, checkpoint, checkpoint_sha256, policy, dim, sample_rate,
       similarity, modalities, coalesce(created_at, now()::TIMESTAMP),
       coalesce(comparison, CASE WHEN dim = 0 THEN 'pairwise' ELSE 'vector' END)
FROM _timbredb_batch;

-- name: import_spaces_fill
-- params: {}
-- A stored space whose checkpoint hash was unknown takes the batch's (it is known once weights load).
UPDATE spaces SET checkpoint_sha256 = b.checkpoint_sha256
FROM (SELECT DISTINCT ON (space_id) space_id, checkpoint_sha256 FROM _timbredb_batch WHERE checkpoint_sha256 IS NOT NULL) b
WHERE spaces.space_id = b.space_id AND spaces.checkpoint_sha256 IS NULL;

-- ---------------------------------------------------------------- import: clips and files

-- name: import_clips_conflicts
-- params: {}
-- columns: key, differs
-- Clips of the registered batch stored (or repeated) with another decoded shape.
SELECT b.clip_sha256 AS key,
       concat_ws(', ', CASE WHEN b.duration_s IS DISTINCT FROM c.duration_s THEN 'duration_s' END,
                 CASE WHEN b.channels IS DISTINCT FROM c.channels THEN 'channels' END,
                 CASE WHEN b.sample_rate IS DISTINCT FROM c.sample_rate THEN 'sample_rate' END,
                 CASE WHEN b.n_frames IS DISTINCT FROM c.n_frames THEN 'n_frames' END) AS differs
FROM _timbredb_batch b JOIN clips c USING (clip_sha256)
WHERE differs <> ''
UNION ALL
SELECT clip_sha256, 'repeated in the file with other values'
FROM (SELECT DISTINCT clip_sha256, duration_s, channels, sample_rate, n_frames FROM _timbredb_batch)
GROUP BY clip_sha256 HAVING count(*) > 1
LIMIT 1;

-- name: import_clips_merge
-- params: {"run_id": null}
-- Insert the registered batch's clips that are not stored (the first source path seen wins).
INSERT OR IGNORE INTO clips (clip_sha256, source_path, duration_s, channels, sample_rate, n_frames, run_id, added_at)
SELECT DISTINCT ON (clip_sha256) clip_sha256, source_path, duration_s, channels, sample_rate, n_frames, $run_id,
       coalesce(added_at, now()::TIMESTAMP)
FROM _timbredb_batch;

-- name: import_clip_files_orphans
-- params: {}
-- columns: problem
-- A file of the registered batch whose clip is not stored.
SELECT 'file ' || b.path || ' points at clip ' || b.clip_sha256 || ', which is not stored' AS problem
FROM _timbredb_batch b ANTI JOIN clips c USING (clip_sha256) LIMIT 1;

-- name: import_clip_files_update
-- params: {"replace": false}
-- Stored files of the registered batch: the batch's observation replaces the stored one when it is newer
-- (or always, with $replace: an ingest batch is the file as it is now).
UPDATE clip_files SET clip_sha256 = b.clip_sha256, size_bytes = b.size_bytes, mtime_ns = b.mtime_ns,
       seen_at = coalesce(b.seen_at, now()::TIMESTAMP)
FROM (SELECT DISTINCT ON (path) * FROM _timbredb_batch ORDER BY path, mtime_ns DESC) b
WHERE clip_files.path = b.path
  AND ($replace OR b.mtime_ns > clip_files.mtime_ns)
  AND (b.clip_sha256, b.size_bytes, b.mtime_ns) IS DISTINCT FROM (clip_files.clip_sha256, clip_files.size_bytes, clip_files.mtime_ns);

-- name: import_clip_files_merge
-- params: {}
-- Insert the registered batch's files that are not recorded.
INSERT OR IGNORE INTO clip_files (path, clip_sha256, size_bytes, mtime_ns, seen_at)
SELECT DISTINCT ON (path) path, clip_sha256, size_bytes, mtime_ns, coalesce(seen_at, now()::TIMESTAMP)
FROM _timbredb_batch ORDER BY path, mtime_ns DESC;

-- ---------------------------------------------------------------- import: prompts and vocabularies

-- name: import_prompts_conflicts
-- params: {}
-- columns: key, differs
-- (descriptor, template) pairs of the registered batch stored (or repeated) with another prompt text.
SELECT b.descriptor || ' / ' || b.template AS key, 'prompt' AS differs
FROM _timbredb_batch b JOIN prompts p USING (descriptor, template)
WHERE b.prompt IS DISTINCT FROM p.prompt
UNION ALL
SELECT descriptor || ' / ' || template, 'repeated in the file with other values'
FROM (SELECT DISTINCT descriptor, template, prompt FROM _timbredb_batch)
GROUP BY descriptor, template HAVING count(*) > 1
LIMIT 1;

-- name: import_prompts_merge
-- params: {}
-- Insert the registered batch's prompts that are not stored.
INSERT OR IGNORE INTO prompts (descriptor, template, prompt)
SELECT DISTINCT ON (descriptor, template) descriptor, template, prompt FROM _timbredb_batch;

-- name: import_vocabularies_conflicts
-- params: {}
-- columns: key, differs
-- Words of the registered batch stored (or repeated) at another position of their vocabulary.
SELECT b.vocabulary || ' / ' || b.descriptor AS key, 'position' AS differs
FROM _timbredb_batch b JOIN vocabularies v USING (vocabulary, descriptor)
WHERE b.position IS DISTINCT FROM v.position
UNION ALL
SELECT vocabulary || ' / ' || descriptor, 'repeated in the file with other values'
FROM (SELECT DISTINCT vocabulary, descriptor, position FROM _timbredb_batch)
GROUP BY vocabulary, descriptor HAVING count(*) > 1
LIMIT 1;

-- name: import_vocabularies_merge
-- params: {}
-- Insert the registered batch's vocabulary words that are not stored.
INSERT OR IGNORE INTO vocabularies (vocabulary, descriptor, position)
SELECT DISTINCT ON (vocabulary, descriptor) vocabulary, descriptor, position FROM _timbredb_batch;

-- ---------------------------------------------------------------- import: vectors

-- name: import_audio_embeddings_orphans
-- params: {}
-- columns: problem
-- An audio vector of the registered batch whose clip is not stored.
SELECT 'audio vector of clip ' || b.clip_sha256 || ', which is not stored' AS problem
FROM _timbredb_batch b ANTI JOIN clips c USING (clip_sha256) LIMIT 1;

-- name: import_text_embeddings_orphans
-- params: {}
-- columns: problem
-- A text vector of the registered batch whose prompt is not stored.
SELECT 'text vector of prompt ' || b.prompt || ', which is not stored' AS problem
FROM _timbredb_batch b ANTI JOIN prompts p ON p.prompt = b.prompt LIMIT 1;

-- name: import_pair_distances_conflicts
-- params: {}
-- columns: key, differs
-- Pair distances of the registered batch stored (or repeated in the batch) with other values (bit for bit).
SELECT b.space_id || ' / ' || b.clip_sha256_a || ' / ' || b.clip_sha256_b AS key,
       concat_ws(', ', CASE WHEN b.cosine_distance IS DISTINCT FROM p.cosine_distance THEN 'cosine_distance' END,
                 CASE WHEN b.l2_distance IS DISTINCT FROM p.l2_distance THEN 'l2_distance' END,
                 CASE WHEN b.n_samples IS DISTINCT FROM p.n_samples THEN 'n_samples' END) AS differs
FROM _timbredb_batch b JOIN pair_distances p USING (space_id, clip_sha256_a, clip_sha256_b)
WHERE differs <> ''
UNION ALL
SELECT space_id || ' / ' || clip_sha256_a || ' / ' || clip_sha256_b, 'repeated in the file with other values'
FROM (SELECT DISTINCT space_id, clip_sha256_a, clip_sha256_b, cosine_distance, l2_distance, n_samples FROM _timbredb_batch)
GROUP BY space_id, clip_sha256_a, clip_sha256_b HAVING count(*) > 1
LIMIT 1;

-- name: import_pair_distances_orphans
-- params: {}
-- columns: problem
-- A pair distance of the registered batch that cannot be stored: its space is not stored or not pairwise,
-- a clip is not stored, its hashes are not in order, it has no batch_key, or a distance is not a finite
-- non-negative number (as `timbredb check` requires).
SELECT problem FROM (
    SELECT 'pair distances of space ' || b.space_id || ', which is not stored' AS problem
    FROM _timbredb_batch b ANTI JOIN spaces s USING (space_id)
    UNION ALL
    SELECT 'pair distances of space ' || b.space_id || ', which is not a pairwise space'
    FROM _timbredb_batch b JOIN spaces s USING (space_id) WHERE coalesce(s.comparison, 'vector') <> 'pairwise'
    UNION ALL
    SELECT 'pair distance of clip ' || b.clip_sha256_a || ', which is not stored'
    FROM _timbredb_batch b ANTI JOIN clips c ON c.clip_sha256 = b.clip_sha256_a
    UNION ALL
    SELECT 'pair distance of clip ' || b.clip_sha256_b || ', which is not stored'
    FROM _timbredb_batch b ANTI JOIN clips c ON c.clip_sha256 = b.clip_sha256_b
    UNION ALL
    SELECT 'pair ' || b.clip_sha256_a || ' / ' || b.clip_sha256_b || ' is not in order (clip_sha256_a must be the smaller hash)'
    FROM _timbredb_batch b WHERE b.clip_sha256_a > b.clip_sha256_b
    UNION ALL
    SELECT 'pair ' || b.clip_sha256_a || ' / ' || b.clip_sha256_b || ' has no batch_key'
    FROM _timbredb_batch b WHERE b.batch_key IS NULL
    UNION ALL
    SELECT 'pair ' || b.clip_sha256_a || ' / ' || b.clip_sha256_b || ' has a distance that is NaN, infinite or negative'
    FROM _timbredb_batch b
    WHERE NOT (isfinite(b.cosine_distance) AND isfinite(b.l2_distance)) OR b.l2_distance < 0
) LIMIT 1;

-- name: import_pair_distances_batches
-- params: {"run_id": null, "imported_from": null}
-- Record the batches (by batch_key) of the registered batch's new pair distances that are not recorded
-- yet (modality 'audio', as the ingest records them), with their provenance, size and time.
INSERT INTO embedding_batches (batch_id, space_id, run_id, modality, n_items, device, dtype, provenance, created_at,
                               batch_key, imported_from)
SELECT nextval('batch_id_seq'), nb.space_id, $run_id, 'audio', nb.n_items, nb.device, nb.dtype, nb.provenance,
       nb.created_at, nb.batch_key, $imported_from
FROM (
    SELECT DISTINCT ON (batch_key) batch_key, space_id,
           coalesce(batch_n_items, count(*) OVER (PARTITION BY batch_key))::INTEGER AS n_items,
           device, dtype, provenance, coalesce(batch_created_at, now()::TIMESTAMP) AS created_at
    FROM (SELECT * FROM _timbredb_batch b ANTI JOIN pair_distances p USING (space_id, clip_sha256_a, clip_sha256_b))
    ORDER BY batch_key
) nb
ANTI JOIN embedding_batches x ON x.batch_key = nb.batch_key;

-- name: import_pair_distances_merge
-- params: {}
-- Insert the registered batch's pair distances that are not stored, under the batches their batch_key names.
INSERT OR IGNORE INTO pair_distances (space_id, clip_sha256_a, clip_sha256_b, cosine_distance, l2_distance, n_samples,
                                      batch_id)
SELECT DISTINCT ON (b.space_id, b.clip_sha256_a, b.clip_sha256_b)
       b.space_id, b.clip_sha256_a, b.clip_sha256_b, b.cosine_distance, b.l2_distance, b.n_samples, x.batch_id
FROM _timbredb_batch b JOIN embedding_batches x ON x.batch_key = b.batch_key;

-- name: import_instruments_conflicts
-- params: {}
-- columns: key, differs
-- Rated instruments of the registered batch stored (or repeated) with another split or recording.
SELECT b.dataset || ' / ' || b.instrument AS key,
       concat_ws(', ', CASE WHEN b.split IS DISTINCT FROM i.split THEN 'split' END,
                 CASE WHEN b.clip_sha256 IS DISTINCT FROM i.clip_sha256 THEN 'clip_sha256' END) AS differs
FROM _timbredb_batch b JOIN instruments i USING (dataset, instrument)
WHERE differs <> ''
UNION ALL
SELECT dataset || ' / ' || instrument, 'repeated in the file with other values'
FROM (SELECT DISTINCT dataset, instrument, split, clip_sha256 FROM _timbredb_batch)
GROUP BY dataset, instrument HAVING count(*) > 1
LIMIT 1;

-- name: import_instruments_orphans
-- params: {}
-- columns: problem
-- A rated instrument of the registered batch whose recording is not stored.
SELECT 'instrument ' || b.instrument || ' has clip ' || b.clip_sha256 || ', which is not stored' AS problem
FROM _timbredb_batch b ANTI JOIN clips c USING (clip_sha256) LIMIT 1;

-- name: import_instruments_merge
-- params: {"run_id": null}
-- Insert the registered batch's rated instruments that are not stored.
INSERT OR IGNORE INTO instruments (dataset, instrument, split, clip_sha256, source, run_id)
SELECT DISTINCT ON (dataset, instrument) dataset, instrument, split, clip_sha256, source, $run_id FROM _timbredb_batch;

-- name: import_ratings_conflicts
-- params: {}
-- columns: key, differs
-- Ratings of the registered batch stored (or repeated) with another value.
SELECT b.dataset || ' / ' || b.instrument || ' / ' || b.descriptor AS key,
       concat_ws(', ', CASE WHEN b.column_name IS DISTINCT FROM r.column_name THEN 'column_name' END,
                 CASE WHEN b.rating IS DISTINCT FROM r.rating THEN 'rating' END) AS differs
FROM _timbredb_batch b JOIN ratings r USING (dataset, instrument, descriptor)
WHERE differs <> ''
UNION ALL
SELECT dataset || ' / ' || instrument || ' / ' || descriptor, 'repeated in the file with other values'
FROM (SELECT DISTINCT dataset, instrument, descriptor, column_name, rating FROM _timbredb_batch)
GROUP BY dataset, instrument, descriptor HAVING count(*) > 1
LIMIT 1;

-- name: import_ratings_orphans
-- params: {}
-- columns: problem
-- A rating of the registered batch for an instrument that is not stored.
SELECT 'rating of instrument ' || b.dataset || ' / ' || b.instrument || ', which is not stored' AS problem
FROM _timbredb_batch b ANTI JOIN instruments i USING (dataset, instrument) LIMIT 1;

-- name: import_ratings_merge
-- params: {}
-- Insert the registered batch's ratings that are not stored.
INSERT OR IGNORE INTO ratings (dataset, instrument, descriptor, column_name, rating)
SELECT DISTINCT ON (dataset, instrument, descriptor) dataset, instrument, descriptor, column_name, rating FROM _timbredb_batch;

-- name: import_listener_ratings_conflicts
-- params: {}
-- columns: key, differs
-- Per-listener ratings of the registered batch stored (or repeated) with another value.
SELECT b.dataset || ' / ' || b.instrument || ' / ' || b.descriptor || ' / ' || b.listener AS key, 'rating' AS differs
FROM _timbredb_batch b JOIN listener_ratings r USING (dataset, instrument, descriptor, listener)
WHERE b.rating IS DISTINCT FROM r.rating
UNION ALL
SELECT dataset || ' / ' || instrument || ' / ' || descriptor || ' / ' || listener, 'repeated in the file with other values'
FROM (SELECT DISTINCT dataset, instrument, descriptor, listener, rating FROM _timbredb_batch)
GROUP BY dataset, instrument, descriptor, listener HAVING count(*) > 1
LIMIT 1;

-- name: import_listener_ratings_merge
-- params: {}
-- Insert the registered batch's per-listener ratings that are not stored (the file they were read from kept).
INSERT OR IGNORE INTO listener_ratings (dataset, instrument, descriptor, listener, rating, source)
SELECT DISTINCT ON (dataset, instrument, descriptor, listener) dataset, instrument, descriptor, listener, rating, source
FROM _timbredb_batch;

-- name: import_rating_sds_conflicts
-- params: {}
-- columns: key, differs
-- Listener SDs of the registered batch stored (or repeated) with another SD or panel size.
SELECT b.dataset || ' / ' || b.instrument || ' / ' || b.descriptor AS key,
       concat_ws(', ', CASE WHEN b.sd IS DISTINCT FROM r.sd THEN 'sd' END,
                 CASE WHEN b.n_listeners IS DISTINCT FROM r.n_listeners THEN 'n_listeners' END) AS differs
FROM _timbredb_batch b JOIN rating_sds r USING (dataset, instrument, descriptor)
WHERE differs <> ''
UNION ALL
SELECT dataset || ' / ' || instrument || ' / ' || descriptor, 'repeated in the file with other values'
FROM (SELECT DISTINCT dataset, instrument, descriptor, sd, n_listeners FROM _timbredb_batch)
GROUP BY dataset, instrument, descriptor HAVING count(*) > 1
LIMIT 1;

-- name: import_rating_sds_merge
-- params: {}
-- Insert the registered batch's listener SDs that are not stored.
INSERT OR IGNORE INTO rating_sds (dataset, instrument, descriptor, sd, n_listeners, source)
SELECT DISTINCT ON (dataset, instrument, descriptor) dataset, instrument, descriptor, sd, n_listeners, source
FROM _timbredb_batch;

-- name: import_exp1_imported_conflicts
-- params: {}
-- columns: key, differs
-- Imported exp1 results of the registered batch stored (or repeated) with other values.
SELECT b.dataset || ' / ' || b.model || ' / ' || b.level || ' / ' || b.split || ' / ' || b.unit AS key,
       concat_ws(', ', CASE WHEN b.model_id IS DISTINCT FROM x.model_id THEN 'model_id' END,
                 CASE WHEN b.pearson_r IS DISTINCT FROM x.pearson_r THEN 'pearson_r' END,
                 CASE WHEN b.spearman_rho IS DISTINCT FROM x.spearman_rho THEN 'spearman_rho' END,
                 CASE WHEN b.file_sha256 IS DISTINCT FROM x.file_sha256 THEN 'file_sha256' END) AS differs
FROM _timbredb_batch b JOIN exp1_imported x USING (dataset, model, level, split, unit)
WHERE differs <> ''
UNION ALL
SELECT dataset || ' / ' || model || ' / ' || level || ' / ' || split || ' / ' || unit, 'repeated in the file with other values'
FROM (SELECT DISTINCT dataset, model, level, split, unit, model_id, pearson_r, spearman_rho, file_sha256 FROM _timbredb_batch)
GROUP BY dataset, model, level, split, unit HAVING count(*) > 1
LIMIT 1;

-- name: import_exp1_imported_merge
-- params: {}
-- Insert the registered batch's imported exp1 results that are not stored.
INSERT OR IGNORE INTO exp1_imported (dataset, model, model_id, level, split, unit, pearson_r, spearman_rho, file, file_sha256,
                                     line, imported_at)
SELECT DISTINCT ON (dataset, model, level, split, unit)
       dataset, model, model_id, level, split, unit, pearson_r, spearman_rho, file, file_sha256, line,
       coalesce(imported_at, now()::TIMESTAMP)
FROM _timbredb_batch;

-- name: import_dissimilarity_datasets_conflicts
-- params: {}
-- columns: key, differs
-- Dissimilarity studies of the registered batch stored (or repeated) with another matrix.
SELECT b.dataset AS key,
       concat_ws(', ', CASE WHEN b.collection IS DISTINCT FROM d.collection THEN 'collection' END,
                 CASE WHEN b.n_stimuli IS DISTINCT FROM d.n_stimuli THEN 'n_stimuli' END,
                 CASE WHEN b.matrix_sha256 IS DISTINCT FROM d.matrix_sha256 THEN 'matrix_sha256' END) AS differs
FROM _timbredb_batch b JOIN dissimilarity_datasets d USING (dataset)
WHERE differs <> ''
UNION ALL
SELECT dataset, 'repeated in the file with other values'
FROM (SELECT DISTINCT dataset, collection, n_stimuli, matrix_sha256 FROM _timbredb_batch)
GROUP BY dataset HAVING count(*) > 1
LIMIT 1;

-- name: import_dissimilarity_datasets_merge
-- params: {"run_id": null}
-- Insert the registered batch's dissimilarity studies that are not stored.
INSERT OR IGNORE INTO dissimilarity_datasets (dataset, collection, n_stimuli, matrix_path, matrix_sha256, run_id, added_at)
SELECT DISTINCT ON (dataset) dataset, collection, n_stimuli, matrix_path, matrix_sha256, $run_id,
       coalesce(added_at, now()::TIMESTAMP)
FROM _timbredb_batch;

-- name: import_dissimilarity_stimuli_conflicts
-- params: {}
-- columns: key, differs
-- Stimuli of the registered batch stored (or repeated) with another file or clip.
SELECT b.dataset || ' / ' || b.stimulus_index::VARCHAR AS key,
       concat_ws(', ', CASE WHEN b.file IS DISTINCT FROM s.file THEN 'file' END,
                 CASE WHEN b.clip_sha256 IS DISTINCT FROM s.clip_sha256 THEN 'clip_sha256' END) AS differs
FROM _timbredb_batch b JOIN dissimilarity_stimuli s USING (dataset, stimulus_index)
WHERE differs <> ''
UNION ALL
SELECT dataset || ' / ' || stimulus_index::VARCHAR, 'repeated in the file with other values'
FROM (SELECT DISTINCT dataset, stimulus_index, file, clip_sha256 FROM _timbredb_batch)
GROUP BY dataset, stimulus_index HAVING count(*) > 1
LIMIT 1;

-- name: import_dissimilarity_stimuli_orphans
-- params: {}
-- columns: problem
-- A stimulus of the registered batch whose study or clip is not stored.
SELECT problem FROM (
    SELECT 'stimulus of study ' || b.dataset || ', which is not stored' AS problem
    FROM _timbredb_batch b ANTI JOIN dissimilarity_datasets d USING (dataset)
    UNION ALL
    SELECT 'stimulus ' || b.dataset || ' / ' || b.file || ' has clip ' || b.clip_sha256 || ', which is not stored'
    FROM _timbredb_batch b ANTI JOIN clips c USING (clip_sha256)
) LIMIT 1;

-- name: import_dissimilarity_stimuli_merge
-- params: {}
-- Insert the registered batch's stimuli that are not stored.
INSERT OR IGNORE INTO dissimilarity_stimuli (dataset, stimulus_index, file, clip_sha256)
SELECT DISTINCT ON (dataset, stimulus_index) dataset, stimulus_index, file, clip_sha256 FROM _timbredb_batch;

-- name: import_dissimilarity_ratings_conflicts
-- params: {}
-- columns: key, differs
-- Human dissimilarities of the registered batch stored (or repeated) with another value.
SELECT b.dataset || ' / ' || b.i::VARCHAR || ' / ' || b.j::VARCHAR AS key, 'dissimilarity' AS differs
FROM _timbredb_batch b JOIN dissimilarity_ratings r USING (dataset, i, j)
WHERE b.dissimilarity IS DISTINCT FROM r.dissimilarity
UNION ALL
SELECT dataset || ' / ' || i::VARCHAR || ' / ' || j::VARCHAR, 'repeated in the file with other values'
FROM (SELECT DISTINCT dataset, i, j, dissimilarity FROM _timbredb_batch)
GROUP BY dataset, i, j HAVING count(*) > 1
LIMIT 1;

-- name: import_dissimilarity_ratings_orphans
-- params: {}
-- columns: problem
-- A human dissimilarity of the registered batch for a study that is not stored.
SELECT 'rating of study ' || b.dataset || ', which is not stored' AS problem
FROM _timbredb_batch b ANTI JOIN dissimilarity_datasets d USING (dataset) LIMIT 1;

-- name: import_dissimilarity_ratings_merge
-- params: {}
-- Insert the registered batch's human dissimilarities that are not stored.
INSERT OR IGNORE INTO dissimilarity_ratings (dataset, i, j, dissimilarity)
SELECT DISTINCT ON (dataset, i, j) dataset, i, j, dissimilarity FROM _timbredb_batch;

-- name: import_exp2_sources_conflicts
-- params: {}
-- columns: key, differs
-- exp2 sources of the registered batch stored (or repeated) with other values, or whose label
-- names another stored source (labels name trajectories, so they stay unique).
SELECT b.source_sha256 AS key,
       concat_ws(', ', CASE WHEN b.label IS DISTINCT FROM s.label THEN 'label' END,
                 CASE WHEN b.kind IS DISTINCT FROM s.kind THEN 'kind' END,
                 CASE WHEN b.sample_rate IS DISTINCT FROM s.sample_rate THEN 'sample_rate' END,
                 CASE WHEN b.channels IS DISTINCT FROM s.channels THEN 'channels' END,
                 CASE WHEN b.duration_s IS DISTINCT FROM s.duration_s THEN 'duration_s' END) AS differs
FROM _timbredb_batch b JOIN exp2_sources s USING (source_sha256)
WHERE differs <> ''
UNION ALL
SELECT b.source_sha256, 'label ' || b.label || ' is taken by stored source ' || s.source_sha256
FROM _timbredb_batch b JOIN exp2_sources s ON s.label = b.label AND s.source_sha256 <> b.source_sha256
UNION ALL
SELECT source_sha256, 'repeated in the file with other values'
FROM (SELECT DISTINCT source_sha256, label, kind, sample_rate, channels, duration_s FROM _timbredb_batch)
GROUP BY source_sha256 HAVING count(*) > 1
LIMIT 1;

-- name: import_exp2_sources_merge
-- params: {}
-- Insert the registered batch's exp2 sources that are not stored.
INSERT OR IGNORE INTO exp2_sources (source_sha256, label, kind, origin, sample_rate, channels, duration_s, added_at)
SELECT DISTINCT ON (source_sha256) source_sha256, label, kind, origin, sample_rate, channels, duration_s,
       coalesce(added_at, now()::TIMESTAMP)
FROM _timbredb_batch;

-- name: import_variants_conflicts
-- params: {}
-- columns: key, differs
-- Variants of the registered batch stored (or repeated) with another rendering.
SELECT b.source_sha256 || ' / ' || b.dataset || ' / ' || b.effect || ' / ' || b.descriptor || ' / ' || b.strength::VARCHAR
           || ' / ' || b.renderer_version AS key,
       concat_ws(', ', CASE WHEN b.clip_sha256 IS DISTINCT FROM v.clip_sha256 THEN 'clip_sha256' END,
                 CASE WHEN b.params IS DISTINCT FROM v.params::VARCHAR THEN 'params' END,
                 CASE WHEN b.duration_s IS DISTINCT FROM v.duration_s THEN 'duration_s' END,
                 CASE WHEN b.tail_s IS DISTINCT FROM v.tail_s THEN 'tail_s' END) AS differs
FROM _timbredb_batch b JOIN variants v USING (source_sha256, dataset, effect, descriptor, strength, renderer_version)
WHERE differs <> ''
UNION ALL
SELECT source_sha256 || ' / ' || dataset || ' / ' || effect || ' / ' || descriptor || ' / ' || strength::VARCHAR || ' / '
           || renderer_version,
       'repeated in the file with other values'
FROM (SELECT DISTINCT source_sha256, dataset, effect, descriptor, strength, renderer_version, clip_sha256, params, duration_s,
             tail_s
      FROM _timbredb_batch)
GROUP BY source_sha256, dataset, effect, descriptor, strength, renderer_version HAVING count(*) > 1
LIMIT 1;

-- name: import_variants_orphans
-- params: {}
-- columns: problem
-- A variant of the registered batch whose source or rendered clip is not stored.
SELECT problem FROM (
    SELECT 'variant of source ' || b.source_sha256 || ', which is not stored' AS problem
    FROM _timbredb_batch b ANTI JOIN exp2_sources s USING (source_sha256)
    UNION ALL
    SELECT 'variant rendered as clip ' || b.clip_sha256 || ', which is not stored'
    FROM _timbredb_batch b ANTI JOIN clips c USING (clip_sha256)
) LIMIT 1;

-- name: import_variants_merge
-- params: {"run_id": null}
-- Insert the registered batch's variants that are not stored, with the times they were made and last used.
INSERT OR IGNORE INTO variants (source_sha256, dataset, effect, descriptor, strength, renderer_version, clip_sha256, params,
                                duration_s, tail_s, run_id, created_at, seen_at)
SELECT DISTINCT ON (source_sha256, dataset, effect, descriptor, strength, renderer_version)
       source_sha256, dataset, effect, descriptor, strength, renderer_version, clip_sha256, params, duration_s, tail_s, $run_id,
       coalesce(created_at, now()::TIMESTAMP), coalesce(seen_at, created_at, now()::TIMESTAMP)
FROM _timbredb_batch;

-- name: import_exp2_imported_conflicts
-- params: {}
-- columns: key, differs
-- Imported exp2 rows of the registered batch stored (or repeated) with other values.
SELECT b.model || ' / ' || b.dataset || ' / ' || b.effect || ' / ' || b.source || ' / ' || b.descriptor || ' / '
           || b.prompt || ' / ' || b.strength::VARCHAR AS key,
       concat_ws(', ', CASE WHEN b.template IS DISTINCT FROM x.template THEN 'template' END,
                 CASE WHEN b.original_cosine IS DISTINCT FROM x.original_cosine THEN 'original_cosine' END,
                 CASE WHEN b.variant_cosine IS DISTINCT FROM x.variant_cosine THEN 'variant_cosine' END,
                 CASE WHEN b.delta IS DISTINCT FROM x.delta THEN 'delta' END,
                 CASE WHEN b.file_sha256 IS DISTINCT FROM x.file_sha256 THEN 'file_sha256' END) AS differs
FROM _timbredb_batch b JOIN exp2_imported x USING (model, dataset, effect, source, descriptor, prompt, strength)
WHERE differs <> ''
UNION ALL
SELECT model || ' / ' || dataset || ' / ' || effect || ' / ' || source || ' / ' || descriptor || ' / ' || prompt || ' / '
           || strength::VARCHAR,
       'repeated in the file with other values'
FROM (SELECT DISTINCT model, dataset, effect, source, descriptor, prompt, strength, template, original_cosine, variant_cosine,
             delta, file_sha256 FROM _timbredb_batch)
GROUP BY model, dataset, effect, source, descriptor, prompt, strength HAVING count(*) > 1
LIMIT 1;

-- name: import_exp2_imported_merge
-- params: {}
-- Insert the registered batch's imported exp2 rows that are not stored.
INSERT OR IGNORE INTO exp2_imported (model, dataset, effect, source, descriptor, template, prompt, strength, original_cosine,
                                     variant_cosine, delta, file, file_sha256, line, imported_at)
SELECT DISTINCT ON (model, dataset, effect, source, descriptor, prompt, strength)
       model, dataset, effect, source, descriptor, template, prompt, strength, original_cosine, variant_cosine, delta, file,
       file_sha256, line, coalesce(imported_at, now()::TIMESTAMP)
FROM _timbredb_batch;

-- name: import_ingest_errors_merge
-- params: {"run_id": null}
-- Record the registered batch's per-input problems (an ingest batch's) under the run that merges them.
INSERT INTO ingest_errors (run_id, path, stage, model_id, error)
SELECT $run_id, path, stage, model_id, error FROM _timbredb_batch;

-- name: import_vector_batches
-- params: {"modality": "audio", "run_id": null, "imported_from": null}
-- Record the batches (by batch_key) of the registered batch of new vectors that are not recorded yet,
-- with the provenance, size and time they were computed with.
INSERT INTO embedding_batches (batch_id, space_id, run_id, modality, n_items, device, dtype, provenance, created_at,
                               batch_key, imported_from)
SELECT nextval('batch_id_seq'), nb.space_id, $run_id, $modality, nb.n_items, nb.device, nb.dtype, nb.provenance,
       nb.created_at, nb.batch_key, $imported_from
FROM (
    SELECT DISTINCT ON (batch_key) batch_key, space_id,
           coalesce(batch_n_items, count(*) OVER (PARTITION BY batch_key))::INTEGER AS n_items,
           device, dtype, provenance, coalesce(batch_created_at, now()::TIMESTAMP) AS created_at
    FROM _timbredb_batch ORDER BY batch_key
) nb
ANTI JOIN embedding_batches x ON x.batch_key = nb.batch_key;

-- name: import_audio_insert
-- params: {}
-- Insert the registered batch of new audio vectors under the batches their batch_key names.
INSERT OR IGNORE INTO audio_embeddings (space_id, clip_sha256, embedding, batch_id)
SELECT DISTINCT ON (b.clip_sha256) b.space_id, b.clip_sha256, b.embedding, x.batch_id
FROM _timbredb_batch b JOIN embedding_batches x ON x.batch_key = b.batch_key;

-- name: import_text_insert
-- params: {}
-- Insert the registered batch of new text vectors under the batches their batch_key names.
INSERT OR IGNORE INTO text_embeddings (space_id, prompt, embedding, batch_id)
SELECT DISTINCT ON (b.prompt) b.space_id, b.prompt, b.embedding, x.batch_id
FROM _timbredb_batch b JOIN embedding_batches x ON x.batch_key = b.batch_key;

-- name: import_audio_present
-- params: {"space_id": "", "keys": []}
-- columns: k
-- The clips of $keys that have an audio vector in the space: a semi-join on the key columns only, so
-- the stored vectors themselves are not read (they are fetched only for keys that are present).
SELECT clip_sha256 AS k FROM audio_embeddings
WHERE space_id = $space_id AND clip_sha256 IN (SELECT unnest($keys));

-- name: import_text_present
-- params: {"space_id": "", "keys": []}
-- columns: k
-- The prompts of $keys that have a text vector in the space (key columns only).
SELECT prompt AS k FROM text_embeddings
WHERE space_id = $space_id AND prompt IN (SELECT unnest($keys));

-- name: import_finetunes_conflicts
-- params: {}
-- columns: key, differs
-- Fine-tuning records of the registered batch stored (or repeated) with another base, method, seed, data or weights.
SELECT b.space_id AS key,
       concat_ws(', ', CASE WHEN b.base_space_id IS DISTINCT FROM f.base_space_id THEN 'base_space_id' END,
                 CASE WHEN b.method IS DISTINCT FROM f.method THEN 'method' END,
                 CASE WHEN b.seed IS DISTINCT FROM f.seed THEN 'seed' END,
                 CASE WHEN b.train_data_sha256 IS DISTINCT FROM f.train_data_sha256 THEN 'train_data_sha256' END,
                 CASE WHEN b.weights_sha256 IS DISTINCT FROM f.weights_sha256 THEN 'weights_sha256' END) AS differs
FROM _timbredb_batch b JOIN finetunes f USING (space_id)
WHERE differs <> ''
UNION ALL
SELECT space_id, 'repeated in the file with other values'
FROM (SELECT DISTINCT space_id, base_space_id, method, seed, train_data_sha256, weights_sha256 FROM _timbredb_batch)
GROUP BY space_id HAVING count(*) > 1
LIMIT 1;

-- name: import_finetunes_orphans
-- params: {}
-- columns: problem
-- A fine-tuning record of the registered batch whose space or base space is not stored, or whose weights do not
-- match their sha256.
SELECT 'fine-tuned space ' || b.label || ' (' || b.space_id || ') is not stored' AS problem
FROM _timbredb_batch b ANTI JOIN spaces s USING (space_id)
UNION ALL
SELECT 'fine-tuned space ' || b.label || ': its base space ' || b.base_label || ' (' || b.base_space_id || ') is not stored'
FROM _timbredb_batch b ANTI JOIN spaces s ON s.space_id = b.base_space_id
UNION ALL
SELECT 'fine-tuned space ' || label || ': its weights do not match weights_sha256'
FROM _timbredb_batch WHERE sha256(weights) <> weights_sha256
LIMIT 1;

-- name: import_finetunes_merge
-- params: {"run_id": null}
-- Insert the registered batch's fine-tuning records that are not stored.
INSERT OR IGNORE INTO finetunes (space_id, label, base_space_id, base_label, method, seed, config, split,
                                 train_data_sha256, weights, weights_sha256, history, seconds, run_id, created_at)
SELECT DISTINCT ON (space_id) space_id, label, base_space_id, base_label, method, seed, config, split,
       train_data_sha256, weights, weights_sha256, history, seconds, $run_id, coalesce(created_at, now()::TIMESTAMP)
FROM _timbredb_batch;

-- name: run_start
-- params: {"command": "", "version": ""}
-- columns: run_id
-- Record a writing invocation; returns its run_id.
INSERT INTO runs (command, timbredb_version) VALUES ($command, $version) RETURNING run_id;

-- name: run_finish
-- params: {"run_id": 0, "summary": "{}"}
-- Mark a run finished with its summary (JSON text).
UPDATE runs SET finished_at = now(), summary = $summary WHERE run_id = $run_id;

-- name: error_record
-- params: {"run_id": null, "path": "", "stage": "", "model_id": null, "error": ""}
-- Record one per-input problem of a run.
INSERT INTO ingest_errors (run_id, path, stage, model_id, error) VALUES ($run_id, $path, $stage, $model_id, $error);

-- name: files_lookup
-- params: {}
-- columns: path, clip_sha256
-- The recorded files among the registered batch _timbredb_batch(path, size_bytes, mtime_ns)
-- whose size and mtime are unchanged and whose clip is stored.
SELECT f.path, f.clip_sha256
FROM _timbredb_batch q
JOIN clip_files f USING (path, size_bytes, mtime_ns)
JOIN clips c USING (clip_sha256);

-- name: clips_add
-- params: {}
-- Insert the clips of the registered batch whose content is not stored yet (the first
-- row of a repeated hash wins); returns how many were inserted.
INSERT OR IGNORE INTO clips (clip_sha256, source_path, duration_s, channels, sample_rate, n_frames, run_id)
SELECT DISTINCT ON (clip_sha256) * FROM _timbredb_batch;

-- name: clip_files_upsert
-- params: {}
-- Record the registered batch of (path, clip_sha256, size_bytes, mtime_ns); a path seen before is updated.
INSERT INTO clip_files (path, clip_sha256, size_bytes, mtime_ns)
SELECT DISTINCT ON (path) * FROM _timbredb_batch
ON CONFLICT (path) DO UPDATE SET clip_sha256 = excluded.clip_sha256, size_bytes = excluded.size_bytes,
    mtime_ns = excluded.mtime_ns, seen_at = now();

-- name: clips_stored
-- params: {"hashes": []}
-- columns: clip_sha256
-- The hashes of $hashes that are stored as clips.
SELECT clip_sha256 FROM clips WHERE list_contains($hashes, clip_sha256);

-- name: clip_path
-- params: {"h": ""}
-- columns: path
-- A file that currently holds the clip (the one seen last), else the clip's first source.
SELECT coalesce((SELECT path FROM clip_files WHERE clip_sha256 = $h ORDER BY seen_at DESC LIMIT 1),
                (SELECT source_path FROM clips WHERE clip_sha256 = $h)) AS path;

-- name: space_ensure
-- params: {"space_id": "", "label": "", "model_id": "", "family": "", "checkpoint": "", "checkpoint_sha256": null, "policy": "{}", "dim": 0, "sample_rate": 0, "similarity": "cosine", "modalities": [], "comparison": "vector"}
-- Record an embedding space (an existing space_id is left alone).
INSERT OR IGNORE INTO spaces (space_id, label, model_id, family, checkpoint, checkpoint_sha256, policy, dim,
                              sample_rate, similarity, modalities, comparison)
VALUES ($space_id, $label, $model_id, $family, $checkpoint, $checkpoint_sha256, $policy, $dim, $sample_rate,
        $similarity, $modalities, $comparison);

-- name: space_set_checkpoint_sha256
-- params: {"space_id": "", "sha": null}
-- The checkpoint's sha256 is known only once weights are loaded: fill it in once.
UPDATE spaces SET checkpoint_sha256 = $sha WHERE space_id = $space_id AND checkpoint_sha256 IS NULL;

-- name: spaces_all
-- params: {}
-- columns: space_id, label, model_id, family, checkpoint, checkpoint_sha256, policy, dim, sample_rate, similarity, modalities, comparison
-- Every stored embedding space, by label.
SELECT space_id, label, model_id, family, checkpoint, checkpoint_sha256, policy, dim, sample_rate, similarity, modalities,
       coalesce(comparison, 'vector') AS comparison
FROM spaces ORDER BY label, space_id;

-- name: batch_add
-- params: {"space_id": "", "run_id": null, "modality": "audio", "n_items": 0, "device": "cpu", "dtype": "float32", "provenance": "{}"}
-- columns: batch_id
-- Record the provenance of one batch of vectors; returns its batch_id.
INSERT INTO embedding_batches (batch_id, space_id, run_id, modality, n_items, device, dtype, provenance)
VALUES (nextval('batch_id_seq'), $space_id, $run_id, $modality, $n_items, $device, $dtype, $provenance)
RETURNING batch_id;

-- name: audio_present
-- params: {"space_id": "", "keys": []}
-- columns: clip_sha256
-- The clips of $keys that have an audio vector in the space (a semi-join: list_contains would test
-- every stored row against the whole list).
SELECT clip_sha256 FROM audio_embeddings WHERE space_id = $space_id AND clip_sha256 IN (SELECT unnest($keys));

-- name: text_present
-- params: {"space_id": "", "keys": []}
-- columns: prompt
-- The prompts of $keys that have a text vector in the space.
SELECT prompt FROM text_embeddings WHERE space_id = $space_id AND list_contains($keys, prompt);

-- name: audio_insert
-- params: {}
-- Insert the registered batch of (space_id, clip_sha256, embedding, batch_id); existing keys are left alone.
INSERT OR IGNORE INTO audio_embeddings (space_id, clip_sha256, embedding, batch_id)
SELECT DISTINCT ON (clip_sha256) space_id, clip_sha256, embedding, batch_id FROM _timbredb_batch;

-- name: text_insert
-- params: {}
-- Insert the registered batch of (space_id, prompt, embedding, batch_id); existing keys are left alone.
INSERT OR IGNORE INTO text_embeddings (space_id, prompt, embedding, batch_id)
SELECT DISTINCT ON (prompt) space_id, prompt, embedding, batch_id FROM _timbredb_batch;

-- name: audio_vectors_all
-- params: {"space_id": ""}
-- columns: k, embedding
-- Every audio vector of a space, ordered by clip hash.
SELECT clip_sha256 AS k, embedding FROM audio_embeddings WHERE space_id = $space_id ORDER BY k;

-- name: audio_vectors_of
-- params: {"space_id": "", "keys": []}
-- columns: k, embedding
-- The stored audio vectors of the clips in $keys, in the order given.
SELECT e.clip_sha256 AS k, e.embedding
FROM unnest($keys) WITH ORDINALITY AS w(k, i)
JOIN audio_embeddings e ON e.clip_sha256 = w.k AND e.space_id = $space_id
ORDER BY w.i;

-- name: text_vectors_of
-- params: {"space_id": "", "keys": []}
-- columns: k, embedding
-- The stored text vectors of the prompts in $keys, in the order given.
SELECT e.prompt AS k, e.embedding
FROM unnest($keys) WITH ORDINALITY AS w(k, i)
JOIN text_embeddings e ON e.prompt = w.k AND e.space_id = $space_id
ORDER BY w.i;

-- name: audio_count
-- params: {"space_id": ""}
-- columns: n
-- How many audio vectors a space holds.
SELECT count(*) AS n FROM audio_embeddings WHERE space_id = $space_id;

-- name: vocabulary_delete
-- params: {"name": ""}
-- Remove a named word list (before it is replaced).
DELETE FROM vocabularies WHERE vocabulary = $name;

-- name: vocabulary_insert
-- params: {"name": "", "word": "", "position": 0}
-- One word of a named word list.
INSERT INTO vocabularies (vocabulary, descriptor, position) VALUES ($name, $word, $position);

-- name: vocabulary_words
-- params: {"name": ""}
-- columns: descriptor
-- The words of one stored vocabulary in their stored order.
SELECT descriptor FROM vocabularies WHERE vocabulary = $name ORDER BY position;

-- name: vocabularies_all
-- params: {}
-- columns: vocabulary, descriptor
-- Every stored word list, word by word in stored order.
SELECT vocabulary, descriptor FROM vocabularies ORDER BY vocabulary, position;

-- name: prompt_add
-- params: {"descriptor": "", "template": "", "prompt": ""}
-- Record a (descriptor, template) -> prompt triple (kept if present).
INSERT OR IGNORE INTO prompts (descriptor, template, prompt) VALUES ($descriptor, $template, $prompt);

-- name: prompts_all
-- params: {}
-- columns: prompt
-- Every stored prompt text.
SELECT DISTINCT prompt FROM prompts ORDER BY prompt;

-- name: table_exists
-- params: {"name": ""}
-- columns: n
-- 1 when a table or view of that name exists.
SELECT count(*) AS n FROM information_schema.tables WHERE table_name = $name;

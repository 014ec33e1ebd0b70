-- name: index_text_rows
-- params: {"space_id": "", "prompts": []}
-- columns: k, batch_id
-- The stored text vectors a text index over $prompts holds, in prompt order (key and batch).
SELECT w.k, e.batch_id
FROM unnest($prompts) WITH ORDINALITY AS w(k, i)
JOIN text_embeddings e ON e.prompt = w.k AND e.space_id = $space_id
ORDER BY w.i;

-- name: index_audio_rows
-- params: {"space_id": ""}
-- columns: clip_sha256, batch_id
-- The stored audio vectors an audio index holds, by clip hash (key and batch).
SELECT clip_sha256, batch_id FROM audio_embeddings WHERE space_id = $space_id ORDER BY clip_sha256;

-- name: index_record
-- params: {"name": ""}
-- columns: path, n_rows, store_state, file_sha256, keys_sha256
-- What an index file was built from, and the sha256 of its two files as written.
SELECT path, n_rows, store_state, file_sha256, keys_sha256 FROM faiss_indexes WHERE index_name = $name;

-- name: index_records_all
-- params: {}
-- columns: index_name, space_id, kind, path
-- Every recorded index.
SELECT index_name, space_id, kind, path FROM faiss_indexes ORDER BY index_name;

-- name: index_upsert
-- params: {"name": "", "space_id": "", "kind": "audio", "path": "", "n_rows": 0, "state": "", "file_sha256": null, "keys_sha256": null}
-- Record (or update) what an index file was built from and the sha256 of its files.
INSERT INTO faiss_indexes (index_name, space_id, kind, path, n_rows, store_state, file_sha256, keys_sha256)
VALUES ($name, $space_id, $kind, $path, $n_rows, $state, $file_sha256, $keys_sha256)
ON CONFLICT (index_name) DO UPDATE SET n_rows = excluded.n_rows, store_state = excluded.store_state,
    path = excluded.path, file_sha256 = excluded.file_sha256, keys_sha256 = excluded.keys_sha256,
    built_at = now();

-- name: index_delete
-- params: {"name": ""}
-- Forget an index record (its prompts are no longer known).
DELETE FROM faiss_indexes WHERE index_name = $name;

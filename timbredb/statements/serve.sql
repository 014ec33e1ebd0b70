-- name: clip_info
-- params: {"h": ""}
-- columns: clip_sha256, source_path, duration_s, channels, sample_rate, n_frames
-- One stored clip's record (no row when the hash is not stored).
SELECT clip_sha256, source_path, duration_s, channels, sample_rate, n_frames FROM clips WHERE clip_sha256 = $h;

-- name: clip_files_of
-- params: {"h": ""}
-- columns: path, size_bytes, mtime_ns
-- Every file recorded as holding the clip, with the size and mtime it had when recorded;
-- the one seen last first.
SELECT path, size_bytes, mtime_ns FROM clip_files WHERE clip_sha256 = $h ORDER BY seen_at DESC, path;

-- name: clip_space_labels
-- params: {"h": ""}
-- columns: label
-- The labels of the spaces that hold an audio vector of the clip.
SELECT s.label FROM audio_embeddings e JOIN spaces s USING (space_id) WHERE e.clip_sha256 = $h ORDER BY s.label;

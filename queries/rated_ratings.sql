-- name: rated_ratings
-- params: {"dataset": "ccmusic"}
-- columns: instrument, split, descriptor, column_name, rating, clip_sha256
-- The stored mean ratings of a rated dataset ($dataset), one row per stimulus x descriptor.
-- Columns: instrument (the stimulus), split (its group; '' when none), descriptor,
-- column_name (the column the mean was read from, or 'mean of listener ratings'),
-- rating (the mean rating), clip_sha256 (the stimulus's recording in clips).
SELECT i.instrument,
       i.split,
       r.descriptor,
       r.column_name,
       CAST(r.rating AS DOUBLE) AS rating,
       i.clip_sha256
FROM instruments i
JOIN ratings r ON r.dataset = i.dataset AND r.instrument = i.instrument
WHERE i.dataset = $dataset
ORDER BY i.split, i.instrument, r.descriptor

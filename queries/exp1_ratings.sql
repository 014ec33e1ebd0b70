-- name: exp1_ratings
-- params: {}
-- columns: instrument, split, descriptor, column_name, rating, clip_sha256
-- The stored CCMusic ratings, one row per instrument x descriptor.
-- Columns: instrument, split ('chinese' | 'western'), descriptor (historical name),
-- column_name (the dataset column it was read from: historical or current hub name),
-- rating (mean human rating, 1-10), clip_sha256 (the instrument's recording in clips).
SELECT i.instrument,
       i.split,
       r.descriptor,
       r.column_name,
       r.rating,
       i.clip_sha256
FROM instruments i
JOIN ratings r ON r.dataset = i.dataset AND r.instrument = i.instrument
WHERE i.dataset = 'ccmusic'
ORDER BY i.split, i.instrument, r.descriptor

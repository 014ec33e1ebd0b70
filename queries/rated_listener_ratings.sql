-- name: rated_listener_ratings
-- params: {"dataset": "ccmusic"}
-- columns: instrument, split, descriptor, listener, rating
-- The per-listener ratings of a rated dataset ($dataset), one row per stimulus x
-- descriptor x listener (missing responses have no row).
-- Columns: instrument (the stimulus), split (its group when the stimulus's recording is
-- stored, else NULL), descriptor, listener (id as the file gives it), rating.
SELECT l.instrument,
       i.split,
       l.descriptor,
       l.listener,
       CAST(l.rating AS DOUBLE) AS rating
FROM listener_ratings l
LEFT JOIN instruments i ON i.dataset = l.dataset AND i.instrument = l.instrument
WHERE l.dataset = $dataset
ORDER BY l.descriptor, l.instrument, l.listener

-- name: rated_sds
-- params: {"dataset": "ccmusic"}
-- columns: instrument, split, descriptor, sd, n_listeners
-- The per-stimulus listener SDs of a rated dataset ($dataset), one row per stimulus x descriptor.
-- Columns: instrument (the stimulus), split (its group when its recording is stored, else
-- NULL), descriptor, sd (sample SD, ddof = 1, of the listeners' ratings), n_listeners
-- (how many listeners it is over).
SELECT s.instrument,
       i.split,
       s.descriptor,
       CAST(s.sd AS DOUBLE) AS sd,
       CAST(s.n_listeners AS BIGINT) AS n_listeners
FROM rating_sds s
LEFT JOIN instruments i ON i.dataset = s.dataset AND i.instrument = s.instrument
WHERE s.dataset = $dataset
ORDER BY s.descriptor, s.instrument

-- name: rated_datasets
-- params: {}
-- columns: dataset, n_stimuli, groups, n_descriptors, n_listener_ratings, n_listeners, n_sds
-- Every rated dataset the store holds (CCMusic and those of `timbredb ingest ratings`).
-- Columns: dataset, n_stimuli (stimuli with a stored recording), groups (their distinct
-- groups), n_descriptors (descriptors with mean ratings), n_listener_ratings (raw
-- per-listener ratings), n_listeners (distinct listeners), n_sds (per-stimulus listener SDs).
WITH names AS (
    SELECT dataset FROM instruments UNION SELECT dataset FROM listener_ratings UNION SELECT dataset FROM rating_sds
)
SELECT n.dataset,
       (SELECT CAST(count(*) AS BIGINT) FROM instruments i WHERE i.dataset = n.dataset) AS n_stimuli,
       (SELECT list(DISTINCT i.split ORDER BY i.split) FROM instruments i WHERE i.dataset = n.dataset AND i.split <> '') AS groups,
       (SELECT CAST(count(DISTINCT r.descriptor) AS BIGINT) FROM ratings r WHERE r.dataset = n.dataset) AS n_descriptors,
       (SELECT CAST(count(*) AS BIGINT) FROM listener_ratings l WHERE l.dataset = n.dataset) AS n_listener_ratings,
       (SELECT CAST(count(DISTINCT l.listener) AS BIGINT) FROM listener_ratings l WHERE l.dataset = n.dataset) AS n_listeners,
       (SELECT CAST(count(*) AS BIGINT) FROM rating_sds s WHERE s.dataset = n.dataset) AS n_sds
FROM names n
ORDER BY n.dataset

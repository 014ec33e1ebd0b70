-- name: exp1_coverage
-- params: {}
-- columns: model, space_id, template, n_instruments, n_descriptors, n_pairs
-- What Experiment 1 can use: per embedding space and prompt template, how many
-- CCMusic instruments and descriptors have a similarity.
-- Columns: model (space label), space_id, template, n_instruments (instruments with
-- an audio embedding), n_descriptors (descriptors with a text embedding; a
-- closed-vocabulary model may lack some), n_pairs (rows of exp1_pairs).
SELECT model,
       space_id,
       template,
       CAST(count(DISTINCT instrument) AS BIGINT) AS n_instruments,
       CAST(count(DISTINCT descriptor) AS BIGINT) AS n_descriptors,
       CAST(count(*) AS BIGINT) AS n_pairs
FROM exp1_pairs
GROUP BY model, space_id, template
ORDER BY model, template

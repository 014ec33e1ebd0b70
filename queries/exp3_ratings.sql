-- name: exp3_ratings
-- params: {"dataset": null}
-- columns: dataset, i, j, dissimilarity
-- The human dissimilarity matrices: one row per stimulus pair i < j of a study
-- (the strict upper triangle that timbremetrics uses).
-- dataset: the study; null = every study.
-- Columns: dataset; i, j (stimulus_index of the two stimuli, i < j); dissimilarity
-- (the raw value from the study's matrix file, on that study's own scale).
SELECT r.dataset, r.i::INTEGER AS i, r.j::INTEGER AS j, r.dissimilarity::DOUBLE AS dissimilarity
FROM dissimilarity_ratings r
JOIN dissimilarity_datasets d USING (dataset)
WHERE $dataset IS NULL OR r.dataset = $dataset
ORDER BY r.dataset, r.i, r.j;

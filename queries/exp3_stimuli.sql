-- name: exp3_stimuli
-- params: {"dataset": null}
-- columns: dataset, stimulus_index, file, clip_sha256, n_stimuli
-- The stimuli of the stored timbre-dissimilarity studies, in matrix order.
-- dataset: the study (folder under timbremetrics/sounds); null = every study.
-- Columns: dataset; stimulus_index (0-based, = matrix row/column, sorted file-name order);
-- file (file name in sounds/<dataset>/); clip_sha256 (the clip); n_stimuli (N of the study).
SELECT s.dataset,
       s.stimulus_index::INTEGER AS stimulus_index,
       s.file,
       s.clip_sha256,
       d.n_stimuli::INTEGER AS n_stimuli
FROM dissimilarity_stimuli s
JOIN dissimilarity_datasets d USING (dataset)
WHERE $dataset IS NULL OR s.dataset = $dataset
ORDER BY s.dataset, s.stimulus_index;

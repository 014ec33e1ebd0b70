-- name: listener_delete
-- params: {"dataset": ""}
-- Remove a rated dataset's per-listener ratings (before they are replaced).
DELETE FROM listener_ratings WHERE dataset = $dataset;

-- name: listener_insert
-- params: {"dataset": "", "instrument": "", "descriptor": "", "listener": "", "rating": 0.0, "source": ""}
-- One listener's rating of a stimulus on a descriptor.
INSERT INTO listener_ratings (dataset, instrument, descriptor, listener, rating, source)
VALUES ($dataset, $instrument, $descriptor, $listener, $rating, $source);

-- name: sd_delete
-- params: {"dataset": ""}
-- Remove a rated dataset's per-stimulus listener SDs (before they are replaced).
DELETE FROM rating_sds WHERE dataset = $dataset;

-- name: sd_insert
-- params: {"dataset": "", "instrument": "", "descriptor": "", "sd": 0.0, "n_listeners": 0, "source": ""}
-- The listeners' SD (ddof = 1) for one stimulus and descriptor, over n_listeners.
INSERT INTO rating_sds (dataset, instrument, descriptor, sd, n_listeners, source)
VALUES ($dataset, $instrument, $descriptor, $sd, $n_listeners, $source);

-- name: listener_count
-- params: {"dataset": ""}
-- columns: n_listener_ratings, n_sds
-- How many per-listener ratings and per-stimulus SDs a rated dataset holds.
SELECT (SELECT count(*) FROM listener_ratings WHERE dataset = $dataset) AS n_listener_ratings,
       (SELECT count(*) FROM rating_sds WHERE dataset = $dataset) AS n_sds;

-- name: exp1_imported_delete
-- params: {"dataset": "", "model": ""}
-- Remove the exp1 results filed under a name (before a re-import replaces them).
DELETE FROM exp1_imported WHERE dataset = $dataset AND model = $model;

-- name: exp1_imported_insert
-- params: {"dataset": "", "model": "", "model_id": null, "level": "", "split": "", "unit": "", "pearson_r": 0.0, "spearman_rho": null, "file": "", "file_sha256": "", "line": 0}
-- One imported exp1 result: a descriptor-level or instrument-level correlation.
INSERT INTO exp1_imported (dataset, model, model_id, level, split, unit, pearson_r, spearman_rho, file, file_sha256, line)
VALUES ($dataset, $model, $model_id, $level, $split, $unit, $pearson_r, $spearman_rho, $file, $file_sha256, $line);

-- name: exp1_imported_count
-- params: {"dataset": null, "model": null}
-- columns: n
-- How many imported exp1 rows are filed under a name (any name / dataset when null).
SELECT count(*) AS n FROM exp1_imported
WHERE ($dataset IS NULL OR dataset = $dataset) AND ($model IS NULL OR model = $model);

-- name: exp1_imported_models
-- params: {"dataset": null}
-- columns: model
-- The names imported exp1 results are filed under (of one dataset, or of all when null).
SELECT DISTINCT model FROM exp1_imported WHERE $dataset IS NULL OR dataset = $dataset ORDER BY 1;

-- name: rated_dataset_names
-- params: {}
-- columns: dataset
-- Every rated dataset the store knows of: with stimuli, listener ratings or SDs.
SELECT dataset FROM instruments
UNION SELECT dataset FROM listener_ratings
UNION SELECT dataset FROM rating_sds
ORDER BY 1;

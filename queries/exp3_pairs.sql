-- name: exp3_pairs
-- params: {"space_ids": null, "dataset": null}
-- columns: model, model_id, space_id, dataset, i, j, file_i, file_j, clip_sha256_i, clip_sha256_j, human, human_norm, cosine_distance, l2_distance, cosine_norm, l2_norm, complete
-- Every stimulus pair (i < j) of the stored dissimilarity studies with the human
-- rating and a model's distances, raw and normalised as timbremetrics does (the
-- dissimilarity_pairs view).
-- space_ids: the spaces (resolved from --model by timbredb.spaces.match); null = every space.
-- dataset: a study; null = all.
-- Columns: model, model_id, space_id; dataset, i, j, file_i, file_j; clip_sha256_i, clip_sha256_j;
-- human (raw rating); human_norm (min-max over the zero-masked N x N matrix, in [0, 1]);
-- cosine_distance (1 - cosine similarity); l2_distance (Euclidean); cosine_norm, l2_norm
-- (the same normalisation of the model's matrix); complete (the space covers every pair of the study).
SELECT model, model_id, space_id, dataset, i::INTEGER AS i, j::INTEGER AS j, file_i, file_j,
       clip_sha256_i, clip_sha256_j, human, human_norm,
       cosine_distance, l2_distance, cosine_norm, l2_norm, complete
FROM dissimilarity_pairs
WHERE ($space_ids IS NULL OR list_contains($space_ids, space_id))
  AND ($dataset IS NULL OR dataset = $dataset)
ORDER BY model, dataset, i, j;

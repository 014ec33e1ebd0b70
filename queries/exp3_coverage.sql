-- name: exp3_coverage
-- params: {"space_ids": null}
-- columns: model, model_id, space_id, dataset, n_stimuli, n_embedded, n_pairs, complete
-- Which embedding spaces hold what each stored study needs (exp3 evaluates a model only
-- on the studies it covers completely): a vector for every stimulus, or, for a pairwise
-- space (spaces.comparison = 'pairwise'), a distance for every pair of stimuli.
-- space_ids: the spaces to consider (resolved from --model by timbredb.spaces.match); null = every space.
-- Columns: model (space label, what --model accepts); model_id; space_id; dataset;
-- n_stimuli (N of the study); n_embedded (stimuli with a vector in the space; for a pairwise
-- space, stimuli in at least one stored pair); n_pairs (pairs i < j the space can compare:
-- both vectors stored, or the pair's distance stored); complete (n_pairs = N (N - 1) / 2).
WITH sp AS (
    SELECT space_id, label, model_id, coalesce(comparison, 'vector') AS comparison
    FROM spaces
    WHERE list_contains(modalities, 'audio')
      AND ($space_ids IS NULL OR list_contains($space_ids, space_id))
),
vec AS (
    SELECT sp.space_id, d.dataset, count(e.clip_sha256) AS n_embedded
    FROM sp
    CROSS JOIN dissimilarity_datasets d
    JOIN dissimilarity_stimuli s ON s.dataset = d.dataset
    LEFT JOIN audio_embeddings e ON e.space_id = sp.space_id AND e.clip_sha256 = s.clip_sha256
    WHERE sp.comparison = 'vector'
    GROUP BY sp.space_id, d.dataset
),
pairs AS (
    SELECT sp.space_id, si.dataset, count(p.space_id) AS n_pairs
    FROM sp
    CROSS JOIN dissimilarity_stimuli si
    JOIN dissimilarity_stimuli sj ON sj.dataset = si.dataset AND sj.stimulus_index > si.stimulus_index
    LEFT JOIN pair_distances p
      ON p.space_id = sp.space_id
     AND p.clip_sha256_a = least(si.clip_sha256, sj.clip_sha256)
     AND p.clip_sha256_b = greatest(si.clip_sha256, sj.clip_sha256)
    WHERE sp.comparison = 'pairwise'
    GROUP BY sp.space_id, si.dataset
),
touched AS (
    SELECT q.space_id, q.dataset, count(DISTINCT q.k) AS n_embedded
    FROM (
        SELECT p.space_id, si.dataset, si.stimulus_index AS k
        FROM pair_distances p
        JOIN dissimilarity_stimuli si ON si.clip_sha256 IN (p.clip_sha256_a, p.clip_sha256_b)
        JOIN sp ON sp.space_id = p.space_id AND sp.comparison = 'pairwise'
    ) q
    GROUP BY q.space_id, q.dataset
)
SELECT sp.label AS model,
       sp.model_id,
       sp.space_id,
       d.dataset,
       d.n_stimuli::INTEGER AS n_stimuli,
       coalesce(v.n_embedded, t.n_embedded, 0)::INTEGER AS n_embedded,
       (CASE WHEN sp.comparison = 'pairwise' THEN coalesce(p.n_pairs, 0)
             ELSE v.n_embedded * (v.n_embedded - 1) // 2 END)::INTEGER AS n_pairs,
       (CASE WHEN sp.comparison = 'pairwise' THEN coalesce(p.n_pairs, 0)
             ELSE v.n_embedded * (v.n_embedded - 1) // 2 END) = d.n_stimuli * (d.n_stimuli - 1) // 2 AS complete
FROM sp
CROSS JOIN dissimilarity_datasets d
LEFT JOIN vec v ON v.space_id = sp.space_id AND v.dataset = d.dataset
LEFT JOIN pairs p ON p.space_id = sp.space_id AND p.dataset = d.dataset
LEFT JOIN touched t ON t.space_id = sp.space_id AND t.dataset = d.dataset
ORDER BY sp.label, d.dataset;

-- 0003_create_dissimilarity: human timbre-dissimilarity datasets (the
-- timbremetrics collection: sounds/<dataset>/*.aiff + true_dissim/<dataset>_
-- dissimilarity_matrix.txt), their stimuli as clips, the human ratings, and a
-- view of every stimulus pair with model and human distances (Experiment 3).

-- One row per dissimilarity study that was ingested completely.
CREATE TABLE dissimilarity_datasets (
    dataset        VARCHAR PRIMARY KEY,  -- folder name under timbremetrics/sounds, e.g. 'Grey1977'
    collection     VARCHAR NOT NULL,     -- 'timbremetrics'
    n_stimuli      INTEGER NOT NULL,     -- N: the matrix is N x N
    matrix_path    VARCHAR NOT NULL,     -- the human matrix file it was read from
    matrix_sha256  VARCHAR NOT NULL,     -- sha256 of that file's bytes
    run_id         BIGINT,
    added_at       TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- The stimuli of each study, in matrix order.
CREATE TABLE dissimilarity_stimuli (
    dataset         VARCHAR NOT NULL,
    stimulus_index  INTEGER NOT NULL,    -- 0-based position in sorted file-name order = matrix row and column
    file            VARCHAR NOT NULL,    -- file name inside sounds/<dataset>/
    clip_sha256     VARCHAR NOT NULL,    -- the clip (see clips); two studies may share a clip
    PRIMARY KEY (dataset, stimulus_index)
);

-- The human matrix: its strict upper triangle (i < j), the values as in the file
-- (each study's own scale). The diagonal and lower triangle are not stored:
-- timbremetrics zeroes them before use.
CREATE TABLE dissimilarity_ratings (
    dataset        VARCHAR NOT NULL,
    i              INTEGER NOT NULL,     -- row = stimulus_index of the first stimulus
    j              INTEGER NOT NULL,     -- column = stimulus_index of the second (j > i)
    dissimilarity  DOUBLE NOT NULL,
    PRIMARY KEY (dataset, i, j),
    CHECK (i < j)
);

-- ---------------------------------------------------------------- views

-- One row per embedding space x study x stimulus pair (i < j) whose two clips
-- both have a vector in the space.
--   model, model_id, space_id       the embedding space (model = what --model accepts)
--   dataset, i, j, file_i, file_j   the pair (indices as in dissimilarity_stimuli)
--   clip_sha256_i, clip_sha256_j    its clips
--   human                           the raw rating from the file
--   human_norm                      min-max normalised over the study's whole N x N matrix
--                                   after zeroing the diagonal and lower triangle (so the
--                                   minimum is min(0, ratings)), as timbremetrics does
--   cosine_distance, l2_distance    1 - cosine similarity, and Euclidean distance, of the vectors
--   cosine_norm, l2_norm            the same normalisation of the model's matrix (0 when all of
--                                   the study's distances are equal)
--   complete                        every pair of the study has both vectors in this space
--                                   (otherwise the model columns are normalised over fewer pairs)
CREATE VIEW dissimilarity_pairs AS
WITH human AS (
    SELECT r.dataset, r.i, r.j, r.dissimilarity AS human,
           least(0, min(r.dissimilarity) OVER d) AS lo,
           greatest(0, max(r.dissimilarity) OVER d) AS hi
    FROM dissimilarity_ratings r
    WINDOW d AS (PARTITION BY r.dataset)
),
model AS (
    SELECT s.label AS model, s.model_id, s.space_id, h.dataset, h.i, h.j,
           si.file AS file_i, sj.file AS file_j,
           si.clip_sha256 AS clip_sha256_i, sj.clip_sha256 AS clip_sha256_j,
           h.human,
           coalesce((h.human - h.lo) / nullif(h.hi - h.lo, 0), 0) AS human_norm,
           1 - list_cosine_similarity(ei.embedding::DOUBLE[], ej.embedding::DOUBLE[]) AS cosine_distance,
           list_distance(ei.embedding::DOUBLE[], ej.embedding::DOUBLE[]) AS l2_distance
    FROM human h
    JOIN dissimilarity_stimuli si ON si.dataset = h.dataset AND si.stimulus_index = h.i
    JOIN dissimilarity_stimuli sj ON sj.dataset = h.dataset AND sj.stimulus_index = h.j
    JOIN audio_embeddings ei ON ei.clip_sha256 = si.clip_sha256
    JOIN audio_embeddings ej ON ej.clip_sha256 = sj.clip_sha256 AND ej.space_id = ei.space_id
    JOIN spaces s ON s.space_id = ei.space_id
)
SELECT m.model, m.model_id, m.space_id, m.dataset, m.i, m.j, m.file_i, m.file_j,
       m.clip_sha256_i, m.clip_sha256_j, m.human, m.human_norm,
       m.cosine_distance, m.l2_distance,
       coalesce((m.cosine_distance - least(0, min(m.cosine_distance) OVER w))
           / nullif(greatest(0, max(m.cosine_distance) OVER w) - least(0, min(m.cosine_distance) OVER w), 0), 0)
           AS cosine_norm,
       coalesce((m.l2_distance - least(0, min(m.l2_distance) OVER w))
           / nullif(greatest(0, max(m.l2_distance) OVER w) - least(0, min(m.l2_distance) OVER w), 0), 0)
           AS l2_norm,
       count(*) OVER w = d.n_stimuli * (d.n_stimuli - 1) // 2 AS complete
FROM model m
JOIN dissimilarity_datasets d ON d.dataset = m.dataset
WINDOW w AS (PARTITION BY m.space_id, m.dataset);

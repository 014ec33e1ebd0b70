-- 0007_add_pair_distances_and_effect_datasets: pairwise embedding spaces (frame-level
-- features compared pair by pair: timbremetrics' mfcc / mss rows), and exp2 effects
-- from more descriptor datasets (SocialFX compression, SAFE-DB EQ / compressor /
-- distortion) beside Audealize's EQ and reverb.
--
-- DuckDB cannot alter a CHECK constraint or a primary key in place, so `variants`
-- and `exp2_imported` are rebuilt: a new table with the wider constraints and the
-- new `dataset` column, every row copied (existing rows are Audealize's), the old
-- table dropped, the new one renamed. The views that read them are re-created at
-- the end. The whole file runs in one transaction with its ledger row.

-- ---------------------------------------------------------------- pairwise spaces

-- How a space compares clips: 'vector' (one vector per clip in audio_embeddings;
-- every space before this migration) or 'pairwise' (no per-clip vector: one row per
-- pair of clips in pair_distances, e.g. frame-level features of a pair padded to a
-- common length). Pairwise spaces have dim = 0.
ALTER TABLE spaces ADD COLUMN comparison VARCHAR DEFAULT 'vector';
UPDATE spaces SET comparison = 'vector' WHERE comparison IS NULL;

-- The distances of a pairwise space, computed once per pair of clips and keyed by
-- both clips' hashes (the smaller hash first, so each pair has one row).
CREATE TABLE pair_distances (
    space_id         VARCHAR NOT NULL,
    clip_sha256_a    VARCHAR NOT NULL,   -- the pair's smaller clip hash
    clip_sha256_b    VARCHAR NOT NULL,   -- the larger one (equal only for a clip paired with itself)
    cosine_distance  DOUBLE NOT NULL,    -- 1 - cosine similarity of the two padded clips' features
    l2_distance      DOUBLE NOT NULL,    -- Euclidean distance of the same features
    n_samples        BIGINT NOT NULL,    -- the pair's common (padded) length, samples at the space's rate
    batch_id         BIGINT NOT NULL,    -- provenance (embedding_batches, modality 'audio')
    PRIMARY KEY (space_id, clip_sha256_a, clip_sha256_b),
    CHECK (clip_sha256_a <= clip_sha256_b)
);

-- ---------------------------------------------------------------- exp2: effects of several datasets

CREATE TABLE variants_0007 (
    source_sha256     VARCHAR NOT NULL,
    -- the descriptor dataset whose settings were applied: 'audealize' (Audealize/SocialFX
    -- EQ and reverb), 'socialfx' (SocialFX compression), 'safedb' (SAFE plug-ins)
    dataset           VARCHAR NOT NULL CHECK (dataset IN ('audealize', 'socialfx', 'safedb')),
    effect            VARCHAR NOT NULL CHECK (effect IN (
                          'original', 'eq', 'reverb', 'socialfx-compression',
                          'safe-eq', 'safe-compression', 'safe-distortion')),
    descriptor        VARCHAR NOT NULL,   -- the word ('' for the original)
    strength          DOUBLE NOT NULL,    -- in [0, 1]; 0 = original
    renderer_version  VARCHAR NOT NULL,
    clip_sha256       VARCHAR NOT NULL,
    params            JSON NOT NULL,
    duration_s        DOUBLE NOT NULL,
    tail_s            DOUBLE NOT NULL,
    run_id            BIGINT,
    created_at        TIMESTAMP NOT NULL DEFAULT current_timestamp,
    seen_at           TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (source_sha256, dataset, effect, descriptor, strength, renderer_version)
);
INSERT INTO variants_0007
SELECT source_sha256, 'audealize', effect, descriptor, strength, renderer_version, clip_sha256, params,
       duration_s, tail_s, run_id, created_at, seen_at
FROM variants;
DROP VIEW exp2_trajectories;
DROP TABLE variants;
ALTER TABLE variants_0007 RENAME TO variants;

CREATE TABLE exp2_imported_0007 (
    model            VARCHAR NOT NULL,
    dataset          VARCHAR NOT NULL CHECK (dataset IN ('audealize', 'socialfx', 'safedb')),
    effect           VARCHAR NOT NULL CHECK (effect IN (
                         'eq', 'reverb', 'socialfx-compression', 'safe-eq', 'safe-compression', 'safe-distortion')),
    source           VARCHAR NOT NULL,
    descriptor       VARCHAR NOT NULL,
    template         VARCHAR NOT NULL,
    prompt           VARCHAR NOT NULL,
    strength         DOUBLE NOT NULL,
    original_cosine  DOUBLE NOT NULL,
    variant_cosine   DOUBLE NOT NULL,
    delta            DOUBLE NOT NULL,
    file             VARCHAR NOT NULL,
    file_sha256      VARCHAR NOT NULL,
    line             INTEGER NOT NULL,
    imported_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (model, dataset, effect, source, descriptor, prompt, strength)
);
INSERT INTO exp2_imported_0007
SELECT model, 'audealize', effect, source, descriptor, template, prompt, strength, original_cosine,
       variant_cosine, delta, file, file_sha256, line, imported_at
FROM exp2_imported;
DROP TABLE exp2_imported;
ALTER TABLE exp2_imported_0007 RENAME TO exp2_imported;

-- ---------------------------------------------------------------- views

-- As in 0004, plus `dataset` (last column): the descriptor dataset of the effect.
-- A variant is compared with the original of the same source, renderer and dataset.
CREATE VIEW exp2_trajectories AS
SELECT s.label AS model,
       v.effect,
       src.label AS source,
       v.descriptor,
       p.template,
       p.prompt,
       v.strength,
       list_cosine_similarity(CAST(ao.embedding AS DOUBLE[]), CAST(t.embedding AS DOUBLE[])) AS original_cosine,
       list_cosine_similarity(CAST(av.embedding AS DOUBLE[]), CAST(t.embedding AS DOUBLE[])) AS variant_cosine,
       list_cosine_similarity(CAST(av.embedding AS DOUBLE[]), CAST(t.embedding AS DOUBLE[]))
         - list_cosine_similarity(CAST(ao.embedding AS DOUBLE[]), CAST(t.embedding AS DOUBLE[])) AS delta,
       'local' AS origin,
       v.renderer_version,
       v.clip_sha256,
       o.clip_sha256 AS original_sha256,
       v.dataset
FROM variants v
JOIN variants o
  ON o.source_sha256 = v.source_sha256 AND o.renderer_version = v.renderer_version
 AND o.dataset = v.dataset AND o.effect = 'original'
JOIN exp2_sources src ON src.source_sha256 = v.source_sha256
JOIN audio_embeddings av ON av.clip_sha256 = v.clip_sha256
JOIN audio_embeddings ao ON ao.clip_sha256 = o.clip_sha256 AND ao.space_id = av.space_id
JOIN spaces s ON s.space_id = av.space_id
JOIN prompts p ON p.descriptor = v.descriptor
JOIN text_embeddings t ON t.space_id = av.space_id AND t.prompt = p.prompt
WHERE v.effect <> 'original'
UNION ALL
SELECT i.model, i.effect, i.source, i.descriptor, i.template, i.prompt, i.strength,
       i.original_cosine, i.variant_cosine, i.delta,
       'imported' AS origin, NULL AS renderer_version, NULL AS clip_sha256, NULL AS original_sha256, i.dataset
FROM exp2_imported i;

-- As in 0003, and pairwise spaces take part: their distances come from pair_distances
-- (the pair's clips in either order) instead of two vectors. Columns unchanged.
CREATE OR REPLACE VIEW dissimilarity_pairs AS
WITH human AS (
    SELECT r.dataset, r.i, r.j, r.dissimilarity AS human,
           least(0, min(r.dissimilarity) OVER d) AS lo,
           greatest(0, max(r.dissimilarity) OVER d) AS hi
    FROM dissimilarity_ratings r
    WINDOW d AS (PARTITION BY r.dataset)
),
pairs AS (
    SELECT h.dataset, h.i, h.j, si.file AS file_i, sj.file AS file_j,
           si.clip_sha256 AS clip_sha256_i, sj.clip_sha256 AS clip_sha256_j,
           h.human, coalesce((h.human - h.lo) / nullif(h.hi - h.lo, 0), 0) AS human_norm
    FROM human h
    JOIN dissimilarity_stimuli si ON si.dataset = h.dataset AND si.stimulus_index = h.i
    JOIN dissimilarity_stimuli sj ON sj.dataset = h.dataset AND sj.stimulus_index = h.j
),
model AS (
    SELECT s.label AS model, s.model_id, s.space_id, q.*,
           1 - list_cosine_similarity(ei.embedding::DOUBLE[], ej.embedding::DOUBLE[]) AS cosine_distance,
           list_distance(ei.embedding::DOUBLE[], ej.embedding::DOUBLE[]) AS l2_distance
    FROM pairs q
    JOIN audio_embeddings ei ON ei.clip_sha256 = q.clip_sha256_i
    JOIN audio_embeddings ej ON ej.clip_sha256 = q.clip_sha256_j AND ej.space_id = ei.space_id
    JOIN spaces s ON s.space_id = ei.space_id
    UNION ALL
    SELECT s.label AS model, s.model_id, s.space_id, q.*, p.cosine_distance, p.l2_distance
    FROM pairs q
    JOIN pair_distances p
      ON p.clip_sha256_a = least(q.clip_sha256_i, q.clip_sha256_j)
     AND p.clip_sha256_b = greatest(q.clip_sha256_i, q.clip_sha256_j)
    JOIN spaces s ON s.space_id = p.space_id
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

-- exp2_ensemble_trajectories (0006), over the rebuilt variants, gains `dataset` (last column)
-- and compares a variant with the original of the same dataset, as exp2_trajectories does.
CREATE OR REPLACE VIEW exp2_ensemble_trajectories AS
SELECT s.label AS model,
       v.effect,
       src.label AS source,
       v.descriptor,
       e.template,
       e.prompt,
       v.strength,
       list_cosine_similarity(CAST(ao.embedding AS DOUBLE[]), e.embedding) AS original_cosine,
       list_cosine_similarity(CAST(av.embedding AS DOUBLE[]), e.embedding) AS variant_cosine,
       list_cosine_similarity(CAST(av.embedding AS DOUBLE[]), e.embedding)
         - list_cosine_similarity(CAST(ao.embedding AS DOUBLE[]), e.embedding) AS delta,
       'local' AS origin,
       v.renderer_version,
       v.clip_sha256,
       o.clip_sha256 AS original_sha256,
       v.dataset
FROM variants v
JOIN variants o
  ON o.source_sha256 = v.source_sha256 AND o.renderer_version = v.renderer_version
 AND o.dataset = v.dataset AND o.effect = 'original'
JOIN exp2_sources src ON src.source_sha256 = v.source_sha256
JOIN audio_embeddings av ON av.clip_sha256 = v.clip_sha256
JOIN audio_embeddings ao ON ao.clip_sha256 = o.clip_sha256 AND ao.space_id = av.space_id
JOIN spaces s ON s.space_id = av.space_id
JOIN ensemble_text_vectors e ON e.space_id = av.space_id AND e.descriptor = v.descriptor
WHERE v.effect <> 'original';

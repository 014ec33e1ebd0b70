-- 0006_create_rated_extensions: rated datasets beyond CCMusic and the analyses beyond
-- the study (issue 11). Per-listener ratings and per-stimulus listener SDs (noise
-- ceilings), Experiment 1 results computed elsewhere (`timbredb import exp1`), the
-- prompt-ensemble text vectors, and views that line any rated dataset up with the
-- similarities (rated_pairs) and exp2 variants with the ensemble (exp2_ensemble_trajectories).
--
-- `instruments` and `ratings` (0002) already carry a `dataset` column: a rated dataset
-- is any set of stimuli (one recording each, a group in `split`, '' when none) with
-- mean ratings; CCMusic is the one called 'ccmusic'. `exp1_pairs` (0002) stays the
-- CCMusic-only view it always was; `rated_pairs` is its generalisation.

-- Raw ratings: one listener's rating of one stimulus on one descriptor.
CREATE TABLE listener_ratings (
    dataset      VARCHAR NOT NULL,
    instrument   VARCHAR NOT NULL,      -- the stimulus, named as in instruments.instrument
    descriptor   VARCHAR NOT NULL,
    listener     VARCHAR NOT NULL,      -- listener id as the file gives it
    rating       DOUBLE NOT NULL,       -- a missing or invalid response has no row
    source       VARCHAR NOT NULL,      -- the file it was read from
    PRIMARY KEY (dataset, instrument, descriptor, listener)
);

-- Published spread of the listeners: the sample SD (ddof = 1) of the ratings of one
-- stimulus on one descriptor, and how many listeners it is over.
CREATE TABLE rating_sds (
    dataset      VARCHAR NOT NULL,
    instrument   VARCHAR NOT NULL,
    descriptor   VARCHAR NOT NULL,
    sd           DOUBLE NOT NULL,
    n_listeners  INTEGER NOT NULL,
    source       VARCHAR NOT NULL,
    PRIMARY KEY (dataset, instrument, descriptor)
);

-- Experiment 1 results computed elsewhere: the study release's descriptors.csv
-- (level 'descriptor', split 'all', unit = descriptor) and <model>_<split>.csv files
-- (level 'instrument', unit = instrument), filed under a model name.
CREATE TABLE exp1_imported (
    dataset       VARCHAR NOT NULL,     -- the rated dataset the results are about ('ccmusic')
    model         VARCHAR NOT NULL,     -- the name they are filed under
    model_id      VARCHAR,              -- the registered timbredb model id that name stands for (msclap -> ms-clap), or NULL
    level         VARCHAR NOT NULL CHECK (level IN ('descriptor', 'instrument')),
    split         VARCHAR NOT NULL,     -- 'all' or a group (chinese, western)
    unit          VARCHAR NOT NULL,     -- the descriptor (descriptor level) or the instrument (instrument level)
    pearson_r     DOUBLE NOT NULL,
    spearman_rho  DOUBLE,               -- NULL when the file gives none
    file          VARCHAR NOT NULL,     -- imported file (absolute path)
    file_sha256   VARCHAR NOT NULL,
    line          INTEGER NOT NULL,     -- line of the row in the file (header = line 1)
    imported_at   TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (dataset, model, level, split, unit)
);

-- The prompt ensemble (the CLIP recipe): per space and descriptor, the mean of the
-- L2-normalised text vectors of every distinct prompt stored for the descriptor in that
-- space (all its templates), under the template name 'ensemble'. Not re-normalised:
-- cosines with it are scale-free. Zero vectors are left out.
CREATE VIEW ensemble_text_vectors AS
WITH elems AS (
    SELECT DISTINCT t.space_id, p.descriptor, t.prompt, e.k, CAST(e.x AS DOUBLE) AS x
    FROM text_embeddings t
    JOIN prompts p ON p.prompt = t.prompt,
    LATERAL (SELECT generate_subscripts(t.embedding, 1) AS k, unnest(t.embedding) AS x) e
),
unit AS (
    SELECT space_id, descriptor, prompt, k,
           x / sqrt(sum(x * x) OVER (PARTITION BY space_id, descriptor, prompt)) AS x,
           sum(x * x) OVER (PARTITION BY space_id, descriptor, prompt) AS norm2
    FROM elems
),
mean AS (
    SELECT space_id, descriptor, k, avg(x) AS x, count(*) AS n_prompts
    FROM unit
    WHERE norm2 > 0
    GROUP BY space_id, descriptor, k
)
SELECT space_id,
       descriptor,
       'ensemble' AS template,
       'ensemble(' || descriptor || ')' AS prompt,
       CAST(max(n_prompts) AS INTEGER) AS n_templates,
       list(x ORDER BY k) AS embedding
FROM mean
GROUP BY space_id, descriptor;

-- One row per rated dataset x embedding space x stimulus x descriptor x template: the
-- cosine between the stimulus's audio embedding and the descriptor's text embedding
-- (similarity) beside the mean rating (rating). template 'ensemble' uses
-- ensemble_text_vectors. `exp1_pairs` = the rows of dataset 'ccmusic' without 'ensemble'.
CREATE VIEW rated_pairs AS
SELECT i.dataset,
       s.label AS model,
       s.space_id,
       i.instrument,
       i.split,
       r.descriptor,
       p.template,
       p.prompt,
       CAST(list_cosine_similarity(a.embedding, t.embedding) AS DOUBLE) AS similarity,
       r.rating,
       i.clip_sha256
FROM instruments i
JOIN ratings r ON r.dataset = i.dataset AND r.instrument = i.instrument
JOIN audio_embeddings a ON a.clip_sha256 = i.clip_sha256
JOIN spaces s ON s.space_id = a.space_id
JOIN prompts p ON p.descriptor = r.descriptor
JOIN text_embeddings t ON t.space_id = a.space_id AND t.prompt = p.prompt
UNION ALL
SELECT i.dataset,
       s.label AS model,
       s.space_id,
       i.instrument,
       i.split,
       r.descriptor,
       e.template,
       e.prompt,
       list_cosine_similarity(CAST(a.embedding AS DOUBLE[]), e.embedding) AS similarity,
       r.rating,
       i.clip_sha256
FROM instruments i
JOIN ratings r ON r.dataset = i.dataset AND r.instrument = i.instrument
JOIN audio_embeddings a ON a.clip_sha256 = i.clip_sha256
JOIN spaces s ON s.space_id = a.space_id
JOIN ensemble_text_vectors e ON e.space_id = a.space_id AND e.descriptor = r.descriptor;

-- exp2_trajectories (0004) for the template 'ensemble': local variants only (imported
-- results have no vectors to average). Same columns as exp2_trajectories.
CREATE VIEW exp2_ensemble_trajectories AS
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
       o.clip_sha256 AS original_sha256
FROM variants v
JOIN variants o
  ON o.source_sha256 = v.source_sha256 AND o.renderer_version = v.renderer_version AND o.effect = 'original'
JOIN exp2_sources src ON src.source_sha256 = v.source_sha256
JOIN audio_embeddings av ON av.clip_sha256 = v.clip_sha256
JOIN audio_embeddings ao ON ao.clip_sha256 = o.clip_sha256 AND ao.space_id = av.space_id
JOIN spaces s ON s.space_id = av.space_id
JOIN ensemble_text_vectors e ON e.space_id = av.space_id AND e.descriptor = v.descriptor
WHERE v.effect <> 'original';

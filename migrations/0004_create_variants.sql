-- 0004_create_variants: Experiment 2. Source clips, their rendered descriptor-effect
-- variants (Audealize EQ / Rafii & Pardo reverb at several strengths), results
-- imported from elsewhere, and the view exp2_trajectories that lines each variant's
-- similarity to its descriptor up with the unprocessed original's.

-- A source that effects are rendered on: a dataset clip, the mixture, or user audio.
CREATE TABLE exp2_sources (
    source_sha256  VARCHAR PRIMARY KEY,   -- content hash of the full source PCM (as clips)
    label          VARCHAR NOT NULL,      -- guitar | piano | drums | mixture | file stem
    kind           VARCHAR NOT NULL CHECK (kind IN ('dataset', 'mixture', 'user')),
    origin         VARCHAR NOT NULL,      -- file path, or how the mixture was made
    sample_rate    INTEGER NOT NULL,      -- Hz
    channels       INTEGER NOT NULL,
    duration_s     DOUBLE NOT NULL,
    added_at       TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- One rendered variant: (source, effect, word, strength, renderer) -> the clip it produced.
-- The unprocessed original of a source is the row effect = 'original', descriptor = '',
-- strength = 0 (the source, trimmed like its variants when a length is set).
-- renderer_version = timbredb.dsp.RENDERER_VERSION + '/' + the length policy
-- ('full' keeps every tail, e.g. '11s' trims to 11 s): a new renderer is a new key.
CREATE TABLE variants (
    source_sha256     VARCHAR NOT NULL,
    effect            VARCHAR NOT NULL CHECK (effect IN ('original', 'eq', 'reverb')),
    descriptor        VARCHAR NOT NULL,   -- the Audealize word ('' for the original)
    strength          DOUBLE NOT NULL,    -- Audealize amount in [0, 1]; 0 = original
    renderer_version  VARCHAR NOT NULL,
    clip_sha256       VARCHAR NOT NULL,   -- the rendered audio, in clips
    params            JSON NOT NULL,      -- effect parameters: {"gains_db": [...40]} or {"d","g","m","f","E","wetdry"}
    duration_s        DOUBLE NOT NULL,    -- rendered length, tail included
    tail_s            DOUBLE NOT NULL,    -- seconds of tail appended after the source (before any trim)
    run_id            BIGINT,
    created_at        TIMESTAMP NOT NULL DEFAULT current_timestamp,
    seen_at           TIMESTAMP NOT NULL DEFAULT current_timestamp,  -- last ingest that used it
    PRIMARY KEY (source_sha256, effect, descriptor, strength, renderer_version)
);

-- Per-condition similarities computed elsewhere (`timbredb import exp2`): the study's
-- released per-model CSVs or timbredb's own export, filed under a model name.
CREATE TABLE exp2_imported (
    model            VARCHAR NOT NULL,    -- the --model NAME given at import
    effect           VARCHAR NOT NULL CHECK (effect IN ('eq', 'reverb')),
    source           VARCHAR NOT NULL,    -- source_type (guitar, piano, mixture, ...)
    descriptor       VARCHAR NOT NULL,
    template         VARCHAR NOT NULL,    -- prompt template inferred from the prompt ('a {} sound')
    prompt           VARCHAR NOT NULL,    -- target_text
    strength         DOUBLE NOT NULL,     -- scale
    original_cosine  DOUBLE NOT NULL,     -- orig_target_sim
    variant_cosine   DOUBLE NOT NULL,     -- manip_target_sim
    delta            DOUBLE NOT NULL,     -- delta_target_sim, as given (validated)
    file             VARCHAR NOT NULL,    -- imported file (absolute path)
    file_sha256      VARCHAR NOT NULL,
    line             INTEGER NOT NULL,    -- line of the row in the file (header = line 1)
    imported_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (model, effect, source, descriptor, prompt, strength)
);

-- One row per embedding space (or imported model) x effect x source x descriptor x
-- prompt x strength: a point of an Experiment 2 trajectory.
--   model            space label (local) or the imported model name
--   effect           'eq' | 'reverb'
--   source           source label (guitar, piano, drums, mixture, file stem)
--   descriptor       the word whose effect parameters were applied and whose prompt is the target
--   template, prompt the target text (prompt = template with the word, "a {} sound" -> "a warm sound")
--   strength         effect strength s in (0, 1]
--   original_cosine  cos(original audio, prompt)
--   variant_cosine   cos(variant at s, prompt)
--   delta            Δ(s) = variant_cosine - original_cosine
--   origin           'local' (rendered and embedded here) | 'imported'
--   renderer_version which renderer made the variant (NULL when imported)
--   clip_sha256, original_sha256  the variant's and the original's clips (NULL when imported)
-- A space without a text embedding for the prompt (closed-vocabulary models) has no row.
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
       o.clip_sha256 AS original_sha256
FROM variants v
JOIN variants o
  ON o.source_sha256 = v.source_sha256 AND o.renderer_version = v.renderer_version AND o.effect = 'original'
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
       'imported' AS origin, NULL AS renderer_version, NULL AS clip_sha256, NULL AS original_sha256
FROM exp2_imported i;

-- 0001_create_core: clips, embedding spaces, embeddings, descriptors, prompts,
-- runs, ingest errors, FAISS index records, and the exploration views.
--
-- No foreign-key constraints: DuckDB checks them eagerly inside transactions and
-- refuses some updates of referenced rows; `timbredb check` verifies references.

CREATE SEQUENCE run_id_seq START 1;
CREATE SEQUENCE batch_id_seq START 1;

-- One row per timbredb invocation that writes.
CREATE TABLE runs (
    run_id           BIGINT PRIMARY KEY DEFAULT nextval('run_id_seq'),
    command          VARCHAR NOT NULL,
    timbredb_version VARCHAR NOT NULL,
    started_at       TIMESTAMP NOT NULL DEFAULT current_timestamp,
    finished_at      TIMESTAMP,
    summary          JSON
);

-- One row per distinct decoded audio content.
CREATE TABLE clips (
    clip_sha256  VARCHAR PRIMARY KEY,   -- sha256 of decoded PCM + sample rate + channels
    source_path  VARCHAR NOT NULL,      -- where the content was first seen (file path or render:// URI)
    duration_s   DOUBLE NOT NULL,
    channels     INTEGER NOT NULL,      -- channels before the mono down-mix
    sample_rate  INTEGER NOT NULL,      -- Hz, as decoded
    n_frames     BIGINT NOT NULL,
    run_id       BIGINT,
    added_at     TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Every file a clip was found at; size and mtime let a re-run skip decoding.
CREATE TABLE clip_files (
    path         VARCHAR PRIMARY KEY,   -- absolute path
    clip_sha256  VARCHAR NOT NULL,
    size_bytes   BIGINT NOT NULL,
    mtime_ns     BIGINT NOT NULL,
    seen_at      TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- An embedding space = (model id, checkpoint, preprocessing policy).
CREATE TABLE spaces (
    space_id          VARCHAR PRIMARY KEY,  -- first 16 hex of sha256 over (model_id, checkpoint, policy)
    label             VARCHAR NOT NULL,     -- what --model accepts: model id, or model@checkpoint[/policy]
    model_id          VARCHAR NOT NULL,
    family            VARCHAR NOT NULL,
    checkpoint        VARCHAR NOT NULL,
    checkpoint_sha256 VARCHAR,              -- of the weights (or data) file, when there is one
    policy            JSON NOT NULL,        -- preprocessing: sample rate, resampler, windows, pooling
    dim               INTEGER NOT NULL,
    sample_rate       INTEGER NOT NULL,     -- Hz the model consumes
    similarity        VARCHAR NOT NULL,     -- 'cosine'
    modalities        VARCHAR[] NOT NULL,   -- ['audio'] or ['audio', 'text']
    created_at        TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Provenance of each embedding batch: device, dtype, package versions.
CREATE TABLE embedding_batches (
    batch_id    BIGINT PRIMARY KEY,
    space_id    VARCHAR NOT NULL,
    run_id      BIGINT,
    modality    VARCHAR NOT NULL CHECK (modality IN ('audio', 'text')),
    n_items     INTEGER NOT NULL,
    device      VARCHAR NOT NULL,
    dtype       VARCHAR NOT NULL,
    provenance  JSON NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Audio vectors, as the model produced them after pooling (not re-normalised
-- unless the space's policy says so). FLOAT[] so spaces of any dimension share
-- the table; spaces.dim gives the length and `timbredb check` verifies it.
CREATE TABLE audio_embeddings (
    space_id     VARCHAR NOT NULL,
    clip_sha256  VARCHAR NOT NULL,
    embedding    FLOAT[] NOT NULL,
    batch_id     BIGINT NOT NULL,
    PRIMARY KEY (space_id, clip_sha256)
);

-- Named word lists (the study's descriptor sets, user files, ...).
CREATE TABLE vocabularies (
    vocabulary  VARCHAR NOT NULL,
    descriptor  VARCHAR NOT NULL,
    position    INTEGER NOT NULL,
    PRIMARY KEY (vocabulary, descriptor)
);

-- A prompt is a descriptor rendered through a template ('{}' is the bare word).
CREATE TABLE prompts (
    descriptor  VARCHAR NOT NULL,
    template    VARCHAR NOT NULL,
    prompt      VARCHAR NOT NULL,
    PRIMARY KEY (descriptor, template)
);

CREATE TABLE text_embeddings (
    space_id   VARCHAR NOT NULL,
    prompt     VARCHAR NOT NULL,
    embedding  FLOAT[] NOT NULL,
    batch_id   BIGINT NOT NULL,
    PRIMARY KEY (space_id, prompt)
);

-- Per-input problems, recorded instead of aborting the run.
CREATE TABLE ingest_errors (
    run_id      BIGINT,
    path        VARCHAR NOT NULL,       -- file, dataset name, or prompt
    stage       VARCHAR NOT NULL,       -- decode | embed | text | dataset
    model_id    VARCHAR,
    error       VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- FAISS index files are caches of the tables above; this records what each was built from.
CREATE TABLE faiss_indexes (
    index_name   VARCHAR PRIMARY KEY,
    space_id     VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL CHECK (kind IN ('audio', 'text')),
    path         VARCHAR NOT NULL,       -- relative to the store's folder
    n_rows       BIGINT NOT NULL,
    store_state  VARCHAR NOT NULL,       -- fingerprint of the rows it holds
    built_at     TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- ---------------------------------------------------------------- views

-- Audio embeddings with the space's model and label.
CREATE VIEW audio_vectors AS
SELECT s.label AS model, s.model_id, s.space_id, e.clip_sha256, c.source_path,
       c.duration_s, e.embedding, s.dim
FROM audio_embeddings e
JOIN spaces s USING (space_id)
JOIN clips c USING (clip_sha256);

-- Text embeddings with their descriptor and template.
CREATE VIEW text_vectors AS
SELECT s.label AS model, s.model_id, s.space_id, p.descriptor, p.template, t.prompt,
       t.embedding, s.dim
FROM text_embeddings t
JOIN spaces s USING (space_id)
JOIN prompts p ON p.prompt = t.prompt;

-- One row per audio clip x prompt (descriptor, template) x space: the cosine.
CREATE VIEW similarities AS
SELECT s.label AS model, s.model_id, a.space_id, a.clip_sha256, c.source_path,
       p.descriptor, p.template, p.prompt,
       list_cosine_similarity(a.embedding, t.embedding) AS cosine
FROM audio_embeddings a
JOIN spaces s ON s.space_id = a.space_id
JOIN clips c ON c.clip_sha256 = a.clip_sha256
JOIN text_embeddings t ON t.space_id = a.space_id
JOIN prompts p ON p.prompt = t.prompt;

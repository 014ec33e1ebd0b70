-- 0002_create_ratings: rated instruments (CCMusic instrument timbre, Experiment 1),
-- their mean human ratings, and the view exp1_pairs that lines ratings up with
-- audio-text cosine similarities.

-- One row per rated instrument: the clip of its recording and its split.
CREATE TABLE instruments (
    dataset      VARCHAR NOT NULL,      -- 'ccmusic'
    instrument   VARCHAR NOT NULL,      -- as the dataset names it (e.g. 'er_hu', 'violin')
    split        VARCHAR NOT NULL,      -- 'chinese' | 'western'
    clip_sha256  VARCHAR NOT NULL,      -- the recording, in clips
    source       VARCHAR NOT NULL,      -- where the ratings came from (ratings.csv path or hub dataset)
    run_id       BIGINT,
    PRIMARY KEY (dataset, instrument)
);

-- Mean listener rating of an instrument on a descriptor (CCMusic: 14 listeners, scale 1-10).
CREATE TABLE ratings (
    dataset      VARCHAR NOT NULL,
    instrument   VARCHAR NOT NULL,
    descriptor   VARCHAR NOT NULL,      -- historical CCMusic name (bright, clear, ..., vigorous)
    column_name  VARCHAR NOT NULL,      -- the column it was read from (historical or current hub name)
    rating       DOUBLE NOT NULL,
    PRIMARY KEY (dataset, instrument, descriptor)
);

-- One row per embedding space x CCMusic instrument x descriptor x prompt template:
-- the cosine between the instrument's audio embedding and the descriptor's text
-- embedding (similarity) beside the mean human rating (rating). A space without a
-- text embedding for a descriptor (a closed-vocabulary model) has no row for it.
CREATE VIEW exp1_pairs AS
SELECT s.label AS model,
       s.space_id,
       i.instrument,
       i.split,
       r.descriptor,
       p.template,
       p.prompt,
       list_cosine_similarity(a.embedding, t.embedding) AS similarity,
       r.rating,
       i.clip_sha256
FROM instruments i
JOIN ratings r ON r.dataset = i.dataset AND r.instrument = i.instrument
JOIN audio_embeddings a ON a.clip_sha256 = i.clip_sha256
JOIN spaces s ON s.space_id = a.space_id
JOIN prompts p ON p.descriptor = r.descriptor
JOIN text_embeddings t ON t.space_id = a.space_id AND t.prompt = p.prompt
WHERE i.dataset = 'ccmusic';

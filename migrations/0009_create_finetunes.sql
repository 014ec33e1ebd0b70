-- 0009_create_finetunes: embedding spaces made by `timbredb finetune` (issue 15).
--
-- A fine-tuned space is an ordinary row of `spaces` (label `<base label>+ft-<hash>`),
-- with ordinary audio and text vectors, so every analysis reads it like any other
-- space. This table holds what made it: the base space, the method, the split,
-- the loss and hyper-parameters, the seed, the training data's digest, and the
-- trained weights themselves (so `describe` and `ingest` can embed new audio in
-- the tuned space, and a copy of the store carries its models).

CREATE TABLE finetunes (
    space_id           VARCHAR PRIMARY KEY,   -- the tuned space (spaces.space_id)
    label              VARCHAR NOT NULL,      -- its label, e.g. laion-clap+ft-1a2b3c4d
    base_space_id      VARCHAR NOT NULL,      -- the space it was trained from (spaces.space_id)
    base_label         VARCHAR NOT NULL,      -- that space's label when it was trained
    method             VARCHAR NOT NULL CHECK (method IN ('adapter', 'lora')),
    seed               BIGINT NOT NULL,
    config             JSON NOT NULL,         -- loss, hyper-parameters, template, effects, renderer
    split              JSON NOT NULL,         -- train / held-out words and sources, the trajectories trained on
    train_data_sha256  VARCHAR NOT NULL,      -- digest of the training rows and their base vectors
    weights            BLOB NOT NULL,         -- the trained parameters (safetensors layout)
    weights_sha256     VARCHAR NOT NULL,
    history            JSON NOT NULL,         -- per-epoch loss terms
    seconds            DOUBLE NOT NULL,       -- training time (re-embedding excluded)
    run_id             BIGINT,
    created_at         TIMESTAMP NOT NULL DEFAULT current_timestamp
);

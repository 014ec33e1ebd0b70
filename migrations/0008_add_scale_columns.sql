-- 0008_add_scale_columns: what moving a store between machines and searching it at
-- scale needs to record (issue 13: Parquet interchange, the Ray engine, IVF indexes).

-- A batch that arrived through Parquet (`timbredb import embeddings`, or a Ray batch
-- file) keeps the key it had where it was computed, so importing the same batch again
-- finds it instead of making a second one, and a store exported again names it the same.
ALTER TABLE embedding_batches ADD COLUMN batch_key VARCHAR;      -- NULL: computed here by the local engine
ALTER TABLE embedding_batches ADD COLUMN imported_from VARCHAR;  -- the folder it was imported from (NULL: computed here)

-- How an audio index searches, and how well: Flat is exact; IVF is approximate, with
-- nprobe tuned on held-back queries from the store until recall@10 against exact
-- search reached the target, and that measured recall recorded here (`timbredb check`).
ALTER TABLE faiss_indexes ADD COLUMN index_type VARCHAR;       -- 'flat' | 'ivf' (NULL: written before 0008, flat)
ALTER TABLE faiss_indexes ADD COLUMN nlist INTEGER;            -- IVF: number of inverted lists (k-means centroids)
ALTER TABLE faiss_indexes ADD COLUMN nprobe INTEGER;           -- IVF: lists searched per query
ALTER TABLE faiss_indexes ADD COLUMN recall_at_10 DOUBLE;      -- IVF: mean recall@10 vs exact search on the held-back queries
ALTER TABLE faiss_indexes ADD COLUMN recall_queries INTEGER;   -- IVF: how many held-back queries measured it

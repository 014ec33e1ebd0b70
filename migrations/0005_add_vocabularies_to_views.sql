-- 0005_add_vocabularies_to_views: text vectors and similarities say which vocabularies
-- their descriptor belongs to, so a query can keep to one word list (before, the
-- `similarities` view mixed every vocabulary any command had embedded), and FAISS
-- index records carry the sha256 of their files, so a damaged but parseable index
-- file is detected instead of silently answering from the wrong vectors.

ALTER TABLE faiss_indexes ADD COLUMN file_sha256 VARCHAR;   -- sha256 of <name>.index as written
ALTER TABLE faiss_indexes ADD COLUMN keys_sha256 VARCHAR;   -- sha256 of <name>.keys.json as written

-- vocabularies: the sorted names of the stored word lists that contain the descriptor
-- (empty when the prompt's word is in none, e.g. a dataset's own descriptors embedded
-- before any list was stored). Filter with list_contains(vocabularies, 'study').
CREATE OR REPLACE VIEW text_vectors AS
SELECT s.label AS model, s.model_id, s.space_id, p.descriptor, p.template, t.prompt,
       t.embedding, s.dim,
       coalesce((SELECT list(DISTINCT v.vocabulary ORDER BY v.vocabulary) FROM vocabularies v
                 WHERE v.descriptor = p.descriptor), []::VARCHAR[]) AS vocabularies
FROM text_embeddings t
JOIN spaces s USING (space_id)
JOIN prompts p ON p.prompt = t.prompt;

CREATE OR REPLACE VIEW similarities AS
SELECT s.label AS model, s.model_id, a.space_id, a.clip_sha256, c.source_path,
       p.descriptor, p.template, p.prompt,
       list_cosine_similarity(a.embedding, t.embedding) AS cosine,
       coalesce((SELECT list(DISTINCT v.vocabulary ORDER BY v.vocabulary) FROM vocabularies v
                 WHERE v.descriptor = p.descriptor), []::VARCHAR[]) AS vocabularies
FROM audio_embeddings a
JOIN spaces s ON s.space_id = a.space_id
JOIN clips c ON c.clip_sha256 = a.clip_sha256
JOIN text_embeddings t ON t.space_id = a.space_id
JOIN prompts p ON p.prompt = t.prompt;

-- name: rated_pairs
-- params: {"dataset": "ccmusic", "template": "{}", "space_ids": null}
-- columns: model, space_id, instrument, split, descriptor, template, prompt, similarity, rating
-- Experiment 1 input for any rated dataset ($dataset, default CCMusic): one row per
-- embedding space x stimulus x descriptor for one prompt template ($template: '{}' =
-- the bare word, 'ensemble' = the mean of the word's normalised template vectors),
-- optionally only the spaces in $space_ids (a list of space ids; null = every space).
-- Columns: model (space label), space_id, instrument (the stimulus), split (its group;
-- '' when the dataset has none), descriptor, template, prompt (the text embedded, or
-- 'ensemble(word)'), similarity (cosine of the stimulus's audio embedding and the
-- text embedding; NaN when either is all zeros), rating (mean rating).
SELECT model,
       space_id,
       instrument,
       split,
       descriptor,
       template,
       prompt,
       CAST(similarity AS DOUBLE) AS similarity,
       CAST(rating AS DOUBLE) AS rating
FROM rated_pairs
WHERE dataset = $dataset
  AND template = $template
  AND ($space_ids IS NULL OR list_contains($space_ids, space_id))
ORDER BY model, space_id, split, instrument, descriptor

-- name: exp1_pairs
-- params: {"template": "{}", "space_ids": null}
-- columns: model, space_id, instrument, split, descriptor, template, prompt, similarity, rating
-- Experiment 1 input: one row per embedding space x CCMusic instrument x descriptor
-- for one prompt template ($template, '{}' = the bare word), optionally only the
-- spaces in $space_ids (a list of space ids; null = every space).
-- Columns: model (space label), space_id, instrument, split ('chinese' | 'western'),
-- descriptor (historical CCMusic name), template, prompt (the text embedded),
-- similarity (cosine of the instrument's audio embedding and the prompt's text
-- embedding; NaN when either vector is all zeros), rating (mean human rating, 1-10).
SELECT model,
       space_id,
       instrument,
       split,
       descriptor,
       template,
       prompt,
       CAST(similarity AS DOUBLE) AS similarity,
       CAST(rating AS DOUBLE) AS rating
FROM exp1_pairs
WHERE template = $template
  AND ($space_ids IS NULL OR list_contains($space_ids, space_id))
ORDER BY model, space_id, split, instrument, descriptor

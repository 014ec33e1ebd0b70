-- name: exp2_shared_parameters
-- params: {}
-- columns: effect, n_words, descriptors, parameters
-- Groups of descriptor words whose stored effect parameters are identical (several
-- Audealize reverb words share one parameter set, so at any strength their variants
-- are the same audio). Columns: effect (an effect label), n_words, descriptors
-- (sorted list), parameters (the shared parameter set as JSON text: the normalised
-- EQ curve, [d, g, m, f, E] for reverb, or the word's full setting for the SocialFX
-- and SAFE effects).
WITH keyed AS (
    SELECT effect,
           descriptor,
           CASE WHEN effect = 'eq' THEN CAST(json_extract(params, '$.curve') AS VARCHAR)
                WHEN effect = 'reverb' THEN CAST(json_array(json_extract(params, '$.d'), json_extract(params, '$.g'),
                                     json_extract(params, '$.m'), json_extract(params, '$.f'),
                                     json_extract(params, '$.E')) AS VARCHAR)
                ELSE CAST(json_extract(params, '$.word') AS VARCHAR)
           END AS parameters
    FROM variants
    WHERE effect <> 'original'
)
SELECT effect,
       count(DISTINCT descriptor) AS n_words,
       list(DISTINCT descriptor ORDER BY descriptor) AS descriptors,
       parameters
FROM keyed
GROUP BY effect, parameters
HAVING count(DISTINCT descriptor) > 1
ORDER BY effect, descriptors

-- name: exp2_eq_words
-- params: {}
-- columns: effect, descriptor, parameters, contributions
-- The word settings of the stored EQ variants of both crowds: Audealize's ('eq': the
-- normalised 40-band curve, gain_dB = 5 x strength x curve) and SAFE-DB's ('safe-eq': the
-- word's median 5-band setting), one row per effect and word. Columns: effect ('eq' |
-- 'safe-eq'), descriptor, parameters (JSON text: the curve, or the named SAFE setting),
-- contributions (SAFE-DB rows behind the median; NULL for Audealize).
SELECT effect,
       descriptor,
       min(CASE WHEN effect = 'eq' THEN CAST(json_extract(params, '$.curve') AS VARCHAR)
                ELSE CAST(json_extract(params, '$.word') AS VARCHAR) END) AS parameters,
       min(CAST(json_extract(params, '$.contributions') AS INTEGER)) AS contributions
FROM variants
WHERE effect IN ('eq', 'safe-eq')
GROUP BY effect, descriptor
ORDER BY effect, descriptor

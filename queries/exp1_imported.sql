-- name: exp1_imported
-- params: {"dataset": "ccmusic", "models": null}
-- columns: model, model_id, level, split, unit, pearson_r, spearman_rho, file
-- Experiment 1 results computed elsewhere (`timbredb import exp1`) for $dataset,
-- optionally only the names in $models (a list; null = every imported model).
-- Columns: model (the name they are filed under), model_id (the registered timbredb
-- model id it stands for, or NULL), level ('descriptor' | 'instrument'), split ('all'
-- or a group), unit (the descriptor or the instrument), pearson_r, spearman_rho (NULL
-- when not given), file (the file it was imported from).
SELECT model,
       model_id,
       level,
       split,
       unit,
       CAST(pearson_r AS DOUBLE) AS pearson_r,
       CAST(spearman_rho AS DOUBLE) AS spearman_rho,
       file
FROM exp1_imported
WHERE dataset = $dataset
  AND ($models IS NULL OR list_contains($models, model))
ORDER BY model, level, split, unit

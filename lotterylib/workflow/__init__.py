"""The workflow wing: the grid of stage jobs and their one run identity (`pipeline`), the results table
(`results`), the report (`report`), job times (`timing`), the `lottery` command (`cli`) and its
summaries (`summary`, `compare`), and the neutrality proof that re-stamps committed runs (`resign`).

The top of the house: it may import every other wing, and nothing imports it."""

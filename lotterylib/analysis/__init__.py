"""The analysis wing: the lottery tests (`lottery`, `lottery_stats`, `tables`), the stability of masks across
seeds (`stability`, `agreement`, `stability_figures`), attention maps and their pattern classes
(`attention_maps`, `patterns`), figures (`plots`), the paper's numbers and the GLUE baselines (`reference`,
`baselines`, `data_files`) and the verdict words (`verdicts`).

Imports only `core` and `pruning`; reads and writes only the paths its callers give it."""

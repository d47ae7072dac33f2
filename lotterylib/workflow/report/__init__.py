"""The report of one preset (`notebooks/00_report.ipynb`) and the tables of notebook 5, both from the preset's
results table (`lotterylib.workflow.results`): one road from the run folders to every table, figure and verdict.
docs/method.md ("The report") states every rule in words. Nothing here trains.

- `frames`: the results table in the analysis modules' shapes (lottery scores, full model and majority class,
  stability and pattern-share tables, degenerate seeds, gap shares, held-out halves);
- `claims`: the claims checklist and its verdicts (by construction, floor ties, degenerate seeds);
- `comparison`: ours next to the paper's, like for like; orderings, mask sizes, the headline table;
- `text`: the generated prose (`run_description`, Table 2's notes, "what this run shows");
- `folders`: what is read from run folders besides results.csv (recorded parameters, baselines, figures);
- `readme`: the README's results section (`lottery readme`).
"""

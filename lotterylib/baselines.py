"""The GLUE baseline rows of the paper's Table 2 (CBOW, BiLSTM+GloVe, BiLSTM+ELMo; Wang et al. 2018).

Table 2 of Prasanna et al. cites these rows from the GLUE paper (arXiv 1804.07461). Their printed values
could not be read from any source reachable while this package was built, so the rows are left EMPTY on
purpose rather than filled from memory; note that the GLUE paper has versions with different baseline
numbers, so whoever fills them must check which version Table 2 cites. Notebook 5 takes them from a CSV
(`baselines_csv`: columns model, task, score on a 0-1 scale) and says so when they are missing.

The paper's own rows (majority class, bad s- and m-subnetworks re-fine-tuned) are in the authors' published
results, read by `lotterylib.reference` from `paper_numbers.csv`.
"""

GLUE_BASELINES: dict[str, dict[str, float]] = {
    "CBOW": {},
    "BiLSTM+GloVe": {},
    "BiLSTM+ELMo": {},
}

"""Reference numbers for the GLUE-baselines comparison (Table 2 of Prasanna et al.).

Paper: Prasanna, Rogers, Rumshisky, "When BERT Plays the Lottery, All Tickets
Are Winning", EMNLP 2020 (arXiv 2005.00561). Its Table 2 compares the "bad"
subnetworks with the GLUE baselines of Wang et al. 2018 (arXiv 1804.07461).

WHAT WAS NOT FOUND. The research session could not read the printed Table 2,
nor the CBoW / BiLSTM / BiLSTM+ELMo rows of the GLUE paper. The stored copies
(vdocuments.mx, ar5iv, arxiv-vanity, readkong) only gave each page's opening
text, and the paper's LaTeX is not in the GitHub file index. So
GLUE_BASELINES and PAPER_TABLE2 are left EMPTY on purpose. Do not fill them
from memory. Note also that the GLUE paper has versions with different
baseline numbers (v1 Table 5, best single-task average "BiLSTM +ELMo 60.3";
v3 Table 4, best "+Attn, ELMo 70.0", after QNLI was revised). So whoever
fills them in must check which version Table 2 cites.

WHAT WAS FOUND (for cross-checks only, NOT the printed Table 2):
  * REPO_RAW_RESULTS: 5-seed GLUE dev-set means, read from the authors' repo
    github.com/sai-prasanna/bert-experiments, files
    evaluate_masked/<setting>/baseline/results.json (the first element of
    each [mean, std] pair). The paper's rounded values may differ. Which
    experiment folder matches which Table 2 row is a GUESS, given per entry.
  * GLUE_LEADERBOARD_CROSSCHECK: seaborn's "glue" dataset
    (github.com/mwaskom/seaborn-data, glue.csv). These are GLUE-leaderboard
    TEST scores with one number per task, not the GLUE paper's tables, and
    the csv does not say which metric it uses for MRPC, QQP or STS-B.

Metric per task. These are the metrics the authors' analysis notebook uses
(experiment_analysis/eval_performance_analysis.ipynb, flatten_metrics):
CoLA = Matthews corr; SST-2 = acc; MRPC = acc; STS-B = Pearson; QQP = acc;
MNLI = matched acc; QNLI = acc; RTE = acc; WNLI = acc. It is not confirmed
that Table 2 uses the same ones. The GLUE paper prints MRPC and QQP as
acc/F1, STS-B as Pearson/Spearman and MNLI as m/mm. All values are on a 0-1
scale.
"""

TASKS = ["CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI"]

# Printed values from the paper's Table 2 (GLUE paper rows). NOT FOUND; see docstring.
GLUE_BASELINES: dict[str, dict[str, float]] = {
    "CBOW": {},
    "BiLSTM+GloVe": {},
    "BiLSTM+ELMo": {},
}

# Printed values of the paper's own Table 2 rows. NOT FOUND; see docstring.
PAPER_TABLE2: dict[str, dict[str, float]] = {
    "majority class": {},
    "bad s-pruned (re-fine-tuned)": {},
    "bad m-pruned (re-fine-tuned)": {},
    "random init + random s-pruning": {},
}

# Raw 5-seed dev means from sai-prasanna/bert-experiments (not the printed table).
# Metric: CoLA mcc, MNLI mnli_acc (matched), MRPC acc, STS-B pearson, QQP acc,
# the other tasks acc.
REPO_RAW_RESULTS: dict[str, dict[str, float]] = {
    # evaluate_masked/freq_baseline/results.json (commit 8d2780da). A single
    # deterministic run (std 0). Probably the majority-class baseline on dev.
    "majority class (freq_baseline)": {
        "CoLA": 0.0, "SST-2": 0.5091743119266054, "MRPC": 0.6838235294117647,
        "STS-B": 0.02425364185684005, "QQP": 0.6318327974276527,
        "MNLI": 0.3544574630667346, "QNLI": 0.5053999633900788,
        "RTE": 0.5270758122743683, "WNLI": 0.5633802816901409,
    },
    # evaluate_masked/head_mlp_bad_retrained/baseline/results.json (commit 529f8453).
    # Guess: the "bad" s-pruned (heads+MLPs) subnetwork, re-fine-tuned.
    "head_mlp_bad_retrained": {
        "CoLA": 0.42714641896519534, "SST-2": 0.8052752293577982,
        "MRPC": 0.6691176470588235, "STS-B": 0.698351044897764,
        "QQP": 0.857744249319812, "MNLI": 0.7920122261844116,
        "QNLI": 0.8626761852462017, "RTE": 0.5913357400722022,
        "WNLI": 0.5267605633802817,
    },
    # evaluate_masked/global_bad_retrained/baseline/results.json (commit 529f8453).
    # Guess: the "bad" m-pruned (global magnitude) subnetwork, re-fine-tuned.
    "global_bad_retrained": {
        "CoLA": 0.024748037475117324, "SST-2": 0.8160550458715596,
        "MRPC": 0.6754901960784313, "STS-B": 0.08185447562372535,
        "QQP": 0.7751570615879297, "MNLI": 0.6192562404482935,
        "QNLI": 0.6068460552809811, "RTE": 0.4945848375451264,
        "WNLI": 0.4901408450704226,
    },
    # evaluate_masked/head_mlp_super_bad_retrained/baseline/results.json (commit c88fdba8).
    # A later "super"-mask variant of the bad s-pruned setting. Its role in the paper is unknown.
    "head_mlp_super_bad_retrained": {
        "CoLA": 0.06463100996170787, "SST-2": 0.8252293577981652,
        "MRPC": 0.690686274509804, "STS-B": 0.13001912580307073,
        "QQP": 0.8411179816967598, "MNLI": 0.5112582781456954,
        "QNLI": 0.8127768625297456, "RTE": 0.5111913357400723,
        "WNLI": 0.5633802816901409,
    },
}

# GLUE leaderboard TEST scores from mwaskom/seaborn-data glue.csv (commit 97ad0ce6),
# divided by 100. There is no CBOW row and no WNLI column. The metric for
# MRPC, QQP and STS-B is not stated (probably F1, F1 and Spearman), and MNLI
# is probably matched accuracy. Use only as a rough sanity check.
GLUE_LEADERBOARD_CROSSCHECK: dict[str, dict[str, float]] = {
    "BiLSTM": {
        "CoLA": 0.116, "SST-2": 0.828, "MRPC": 0.818, "STS-B": 0.703,
        "QQP": 0.625, "MNLI": 0.656, "QNLI": 0.746, "RTE": 0.574,
    },
    "BiLSTM+ELMo": {
        "CoLA": 0.321, "SST-2": 0.893, "MRPC": 0.847, "STS-B": 0.703,
        "QQP": 0.611, "MNLI": 0.672, "QNLI": 0.755, "RTE": 0.574,
    },
}

"""`selection: split`: masks chosen on one seeded half of dev, every reported score on the other half."""
import inspect
import json

import numpy as np
import pytest

from conftest import tiny_encoded
from lotterylib.analysis import lottery
from lotterylib.core import finetuning
from lotterylib.core.data import GlueSplit, dev_halves
from lotterylib.core.tasks import get_task
from lotterylib.core.training import TrainConfig
from lotterylib.stages import inputs
from lotterylib.workflow import pipeline


def fake_dev(n: int) -> GlueSplit:
    return GlueSplit(get_task("SST-2"), "dev", [(f"text {i}",) for i in range(n)], np.arange(n) % 2, "fake")


@pytest.mark.parametrize("n", [0, 1, 7, 872])
def test_dev_halves_are_disjoint_seeded_and_cover_dev(n):
    sel, rep = dev_halves(fake_dev(n), seed=0)
    ids = lambda d: [int(t[0].split()[1]) for t in d.texts]  # noqa: E731
    assert len(sel) == n // 2 and len(rep) == n - n // 2
    assert not set(ids(sel)) & set(ids(rep)) and sorted(ids(sel) + ids(rep)) == list(range(n))
    assert ids(sel) == sorted(ids(sel)) and ids(rep) == sorted(ids(rep))         # original order kept
    assert [ids(d) for d in dev_halves(fake_dev(n), seed=0)] == [ids(sel), ids(rep)]
    if n > 7:
        assert ids(dev_halves(fake_dev(n), seed=1)[0]) != ids(sel)
        assert 0.4 < sel.labels.mean() < 0.6                                        # a random, not a blocked, split


def test_dev_half_per_use_and_errors():
    assert finetuning.dev_half("dev", "selection") == finetuning.dev_half("dev", "report") == ""
    assert finetuning.dev_half("split", "selection") == "selection"
    assert finetuning.dev_half("split", "report") == "report"
    with pytest.raises(ValueError, match="selection must be one of"):
        finetuning.dev_half("held-out", "selection")
    with pytest.raises(ValueError, match="use must be"):
        finetuning.dev_half("split", "search")
    finetuning.check_selection({"dev_score": 0.9}, "dev", "finetune")             # older runs: dev
    with pytest.raises(ValueError, match="finetune ran with selection='dev'.*outputs_root"):
        finetuning.check_selection({}, "split", "finetune")


def test_load_task_data_halves_of_the_subsampled_dev(glue_dir):
    from lotterylib.core import models

    tok = models.load_tokenizer("minilm-l6")
    load = lambda half: finetuning.load_task_data("SST-2", tok, str(glue_dir), 0, 60, 32, with_train=False,  # noqa: E731
                                                  dev_half=half)
    whole, sel, rep = load(""), load("selection"), load("report")
    assert (len(whole.dev), len(sel.dev), len(rep.dev)) == (60, 30, 30)
    assert sorted(sel.dev.texts + rep.dev.texts) == sorted(whole.dev.texts)
    assert not set(sel.dev.texts) & set(rep.dev.texts)
    assert sel.dev_enc.input_ids == [whole.dev_enc.input_ids[i] for i, t in enumerate(whole.dev.texts)
                                     if t in set(sel.dev.texts)]
    with pytest.raises(ValueError, match="dev_half must be one of"):
        load("other")


def test_search_setup_sees_only_the_selection_half(glue_dir):
    from lotterylib.core import models

    tok = models.load_tokenizer("minilm-l6")
    setup = lottery.LotterySetup("minilm-l6", get_task("SST-2"), tiny_encoded(4), tiny_encoded(4), TrainConfig(), 1)
    assert lottery.with_search_half(setup, tok, str(glue_dir), 60, 32, "dev") is setup
    assert lottery.search_setup(setup) is setup
    split = lottery.with_search_half(setup, tok, str(glue_dir), 60, 32, "split")
    search = lottery.search_setup(split)
    sel = finetuning.load_task_data("SST-2", tok, str(glue_dir), 0, 60, 32, with_train=False, dev_half="selection")
    assert split.search_dev.input_ids == search.dev.input_ids == sel.dev_enc.input_ids
    assert split.dev is setup.dev and search.train is setup.train


def test_notebooks_search_on_the_selection_half_and_report_on_the_other():
    """Notebooks 2 and 3 (the searches) load only the search half; 1 and 4 (reported scores) the report half
    (MNLI mismatched, which no search sees, is reported whole)."""
    for stage, use in (("s_pruning", "selection"), ("m_pruning", "selection"), ("finetune", "report"), ("lottery", "report")):
        nb = json.loads(pipeline.resolve(pipeline.STAGES[stage].notebook).read_text())
        code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        if stage == "lottery":   # its inputs are loaded by one call, `inputs.lottery_inputs`
            assert code.count("inputs.lottery_inputs(") == 1
            code = inspect.getsource(inputs.lottery_inputs).replace("= load_task_data(", "= finetuning.load_task_data(")
            code = code.replace("=dev_half(", "=finetuning.dev_half(")
        loads = code.count("finetuning.load_task_data(") - code.count('dev_split="dev_mm"')
        assert loads == code.count(f'dev_half=finetuning.dev_half(selection, "{use}")') == 1, stage
        assert "selection" in pipeline.STAGES[stage].params


def test_split_runs_get_their_own_outputs_root():
    assert pipeline.load_preset("smoke")["outputs_root"] == "outputs/smoke"
    assert pipeline.load_preset("smoke", {"selection": "split"})["outputs_root"] == "outputs/smoke-split"
    assert pipeline.load_preset("smoke", {"selection": "split", "outputs_root": "/tmp/x"})["outputs_root"] == "/tmp/x"
    sp = pipeline.stage_params(pipeline.load_preset("smoke", {"selection": "split"}), "s_pruning", "SST-2", 1)
    assert sp["selection"] == "split" and sp["outputs_root"] == "outputs/smoke-split"

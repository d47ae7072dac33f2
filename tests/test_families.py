"""Encoder families (lotterylib/core/families.py) on tiny random models built from a config, nothing downloaded:
gates against the same model with its weights edited by hand, gated = physically pruned, both searches, attention
maps and lottery draws, the fine-tune and s-pruning notebooks; unsupported models refused before anything is written.

The module paths below are written out by hand from transformers' modeling files, independently of the adapters."""
import copy

import numpy as np
import pytest
import torch
import transformers as tf
from transformers import BertTokenizerFast

from conftest import tiny_encoded
from lotterylib.analysis import lottery
from lotterylib.analysis.attention_maps import attention_maps
from lotterylib.analysis.patterns.layout import layout
from lotterylib.core.families import UnsupportedModelError, family_of
from lotterylib.core.gates import Gates
from lotterylib.core.models import check_model, load_classifier
from lotterylib.core.physical import NoHeads, count_parameters, prune_physically
from lotterylib.core.tasks import get_task
from lotterylib.pruning import magnitude, structured
from test_bad_inputs import run_notebook

L, H, D, I = 3, 4, 32, 37
SIZES = dict(vocab_size=100, hidden_size=D, num_hidden_layers=L, num_attention_heads=H, intermediate_size=I,
             max_position_embeddings=64, pad_token_id=0)
CONFIGS = {
    "bert": lambda: tf.BertConfig(**SIZES),
    "roberta": lambda: tf.RobertaConfig(**SIZES),
    "xlm-roberta": lambda: tf.XLMRobertaConfig(**SIZES),
    "electra": lambda: tf.ElectraConfig(embedding_size=16, **SIZES),
    "distilbert": lambda: tf.DistilBertConfig(vocab_size=100, dim=D, n_layers=L, n_heads=H, hidden_dim=I,
                                              max_position_embeddings=64, pad_token_id=0),
    # DeBERTa-v2 with separate positional projections, and v3's layout (shared keys, log buckets)
    "deberta-v2": lambda: tf.DebertaV2Config(**SIZES, relative_attention=True, pos_att_type=["p2c", "c2p"],
                                             max_relative_positions=16, share_att_key=False),
    "deberta-v3": lambda: tf.DebertaV2Config(**SIZES, relative_attention=True, pos_att_type=["p2c", "c2p"],
                                             position_buckets=8, max_relative_positions=16, share_att_key=True,
                                             norm_rel_ebd="layer_norm"),
}
BERT_LAYOUT = ("{base}.encoder.layer.{l}.attention.output.dense", "{base}.encoder.layer.{l}.output.dense")
# (W_O, the MLP's second dense layer) of layer l, by hand
PATHS = {"bert": BERT_LAYOUT, "roberta": BERT_LAYOUT, "xlm-roberta": BERT_LAYOUT, "electra": BERT_LAYOUT,
         "distilbert": ("{base}.transformer.layer.{l}.attention.out_lin", "{base}.transformer.layer.{l}.ffn.lin2"),
         "deberta-v2": BERT_LAYOUT, "deberta-v3": BERT_LAYOUT}
QUERY = {"bert": "bert.encoder.layer.0.attention.self.query.weight",
         "roberta": "roberta.encoder.layer.0.attention.self.query.weight",
         "xlm-roberta": "roberta.encoder.layer.0.attention.self.query.weight",
         "electra": "electra.encoder.layer.0.attention.self.query.weight",
         "distilbert": "distilbert.transformer.layer.0.attention.q_lin.weight",
         "deberta-v2": "deberta.encoder.layer.0.attention.self.query_proj.weight",
         "deberta-v3": "deberta.encoder.layer.0.attention.self.query_proj.weight"}
FAMILIES = list(CONFIGS)


def family_model(name: str, num_labels: int = 2, seed: int = 0) -> torch.nn.Module:
    """A tiny random classifier whose biases and LayerNorms are random too (a dropped bias would show)."""
    config = CONFIGS[name]()
    config.num_labels = num_labels
    torch.manual_seed(seed)
    model = tf.AutoModelForSequenceClassification.from_config(config).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("bias") or "LayerNorm" in pname or "layer_norm" in pname:
                p.add_(0.2 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(1)
    lengths = [11, 7, 11, 3]
    ids = torch.randint(5, 100, (4, 11))
    mask = (torch.arange(11) < torch.tensor(lengths)[:, None]).long()
    return {"input_ids": ids * mask, "attention_mask": mask}


def logits(model, batch):
    with torch.inference_mode():
        return model(**batch).logits


@pytest.mark.parametrize("name", FAMILIES)
def test_gates_equal_the_weights_scaled_by_hand(name, batch):
    """A head gate g scales head h's input columns of W_O; an MLP gate scales the MLP's output layer (weight
    and bias): the same model with those weights edited, no hooks, gives the gated logits."""
    model = family_model(name)
    rng = np.random.default_rng(0)
    head, mlp = rng.uniform(0, 1.5, (L, H)), rng.uniform(0, 1.5, L)
    head[1] = 0.0
    edited = copy.deepcopy(model)
    d = D // H
    with torch.no_grad():
        for l in range(L):
            w_o = edited.get_submodule(PATHS[name][0].format(base=model.base_model_prefix, l=l))
            w_o.weight.mul_(torch.tensor(head[l], dtype=torch.float32).repeat_interleave(d))
            out = edited.get_submodule(PATHS[name][1].format(base=model.base_model_prefix, l=l))
            out.weight.mul_(float(mlp[l]))
            out.bias.mul_(float(mlp[l]))
    with Gates(model, head, mlp):
        gated = logits(model, batch)
    torch.testing.assert_close(gated, logits(edited, batch), atol=1e-5, rtol=1e-5)
    assert (gated - logits(model, batch)).abs().max() > 1e-4   # the gates matter, and the hooks are gone again


def mask_cases():
    rng = np.random.default_rng(3)
    cases = {f"random{s}": ((rng.uniform(size=(L, H)) > 0.5).astype(float), (rng.uniform(size=L) > 0.4).astype(float))
             for s in range(2)}
    no_heads = cases["random0"][0].copy()
    no_heads[1] = 0
    return {**cases, "layer_without_heads": (no_heads, np.array([1.0, 0.0, 1.0])),
            "nothing_left": (np.zeros((L, H)), np.zeros(L))}


MASKS = mask_cases()


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("masks", list(MASKS))
def test_physically_pruned_twin_equals_the_gated_model(name, masks, batch):
    head, mlp = MASKS[masks]
    model = family_model(name, seed=2)
    pruned = prune_physically(model, head, mlp)
    with Gates(model, head, mlp):
        gated = logits(model, batch)
    torch.testing.assert_close(logits(pruned, batch), gated, atol=1e-5, rtol=1e-5)
    # a head removes its Q, K, V rows with their biases and its W_O columns (DeBERTa-v2: its positional
    # projections' rows too); an MLP its two dense layers
    d = D // H
    per_head = 4 * D * d + 3 * d + (2 * (D * d + d) if name == "deberta-v2" else 0)
    removed = int((1 - head).sum()) * per_head + int((1 - mlp).sum()) * (2 * D * I + I + D)
    assert count_parameters(model) - count_parameters(pruned) == removed
    if masks == "layer_without_heads":
        path = "transformer.layer.1.attention" if name == "distilbert" else "encoder.layer.1.attention.self"
        assert isinstance(pruned.get_submodule(f"{model.base_model_prefix}.{path}"), NoHeads)


@pytest.mark.parametrize("name", FAMILIES)
def test_both_searches_run_and_name_the_familys_weights(name):
    model = family_model(name, seed=4)
    task, dev = get_task("RTE"), tiny_encoded(16, seed=3)
    gates = Gates(model)
    scorer = structured.make_scorer(model, task, dev, gates, batch_size=8)
    result = structured.structured_search(scorer, None, L, H, threshold=0.5, progress=False)
    gates.remove()
    assert result.masks.head.shape == (L, H) and result.masks.mlp.shape == (L,) and len(result.steps) >= 2

    full = magnitude.make_scorer(model, task, dev, batch_size=8)().score
    m = magnitude.magnitude_search(model, magnitude.make_scorer(model, task, dev, batch_size=8), full,
                                   threshold=0.0, max_steps=2, progress=False)
    assert len(m.masks) == 6 * L and QUERY[name] in m.masks
    assert m.sparsity == pytest.approx(1 - 0.9 ** 2, abs=1e-3)
    heads, mlps = magnitude.survival_fractions(m.masks, L, H)
    assert heads.shape == (L, H) and mlps.shape == (L,) and ((heads > 0) & (heads < 1)).all()


@pytest.mark.parametrize("name", FAMILIES)
def test_attention_maps_and_lottery_draws_have_the_right_shapes(name, batch):
    model = family_model(name, seed=5)
    raw = attention_maps(model, {**batch, "attention_mask": torch.ones_like(batch["attention_mask"])})
    assert raw.shape == (4, L, H, 11, 11)
    np.testing.assert_allclose(raw.sum(-1), 1.0, atol=1e-5)
    ragged = attention_maps(model, batch, normed=True)
    assert [m.shape for m in ragged] == [(L, H, n, n) for n in (11, 7, 11, 3)]

    rng = np.random.default_rng(0)
    head, mlp = (rng.uniform(size=(L, H)) > 0.3).astype(float), np.array([1.0, 0.0, 1.0])
    weights = magnitude.prunable_weights(model)
    wm = {k: torch.rand(v.shape) > 0.4 for k, v in weights.items()}
    drawn = lottery.draw_subnetworks(0, head, mlp, wm, np.stack([head, 1 - head]), np.stack([mlp, mlp]),
                                     weights=weights)
    for h, m in drawn["s"].values():
        assert h.shape == (L, H) and m.shape == (L,)
    for masks in drawn["m"].values():
        assert {k: v.shape for k, v in masks.items()} == {k: v.shape for k, v in wm.items()}


def test_attention_pattern_layout_of_bpe_and_sentencepiece_tokens():
    """RoBERTa's pair <s> A </s></s> B </s> and word-start marks: the same layout as BERT's [CLS] A [SEP] B [SEP]."""
    bert = layout(["[CLS]", "good", ".", "[SEP]", "bad", "[SEP]"])
    roberta = layout(["<s>", "\u0120good", "\u0120.", "</s>", "</s>", "\u0120bad", "</s>"])
    sentencepiece = layout(["[CLS]", "\u2581good", "\u2581.", "[SEP]", "\u2581bad", "[SEP]"])
    assert roberta.cls_sep.tolist() == [0, 3, 4, 6] and roberta.punctuation.tolist() == [2]
    assert roberta.segments.tolist() == [0, 0, 0, 0, 1, 1, 1]
    for lay in (bert, sentencepiece):
        assert lay.cls_sep.tolist() == [0, 3, 5] and lay.punctuation.tolist() == [2]
        assert lay.segments.tolist() == [0, 0, 0, 0, 1, 1]


def save_tiny(name: str, folder) -> str:
    """A tiny model of the family with a tiny WordPiece tokenizer (letters, their ## pieces and unused words up
    to the model's 100 embedding rows, which `load_checkpoint` checks)."""
    family_model(name, seed=6).save_pretrained(folder)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters, *(f"##{c}" for c in letters)]
    vocab += [f"[unused{i}]" for i in range(100 - len(vocab))]
    BertTokenizerFast(vocab={word: i for i, word in enumerate(vocab)}).save_pretrained(folder)
    return str(folder)


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_finetune_and_s_pruning_notebooks_run(name, tmp_path, glue_dir):
    """Notebooks 1 and 2 on a tiny model of the family (notebook 2 checks its physically pruned twin)."""
    model = save_tiny(name, tmp_path / "model")
    common = dict(model=model, outputs_root=str(tmp_path / "out"), glue_dir=str(glue_dir), task="SST-2",
                  max_dev_examples=16, max_seq_len=24, progress=False, bf16=False)
    tuned = run_notebook("finetune", {**common, "max_train_examples": 16, "batch_size": 8})
    assert family_of(tuned["net"]).name == family_of(family_model(name)).name
    pruned = run_notebook("s_pruning", common)
    assert pruned["run"].dir.joinpath("metrics.json").is_file()
    assert pruned["num_layers"] * pruned["num_heads"] == L * H


REFUSED = {"gpt2": lambda: tf.GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=100),
           "albert": lambda: tf.AlbertConfig(**SIZES)}


@pytest.mark.parametrize("model_type", list(REFUSED))
def test_unsupported_models_are_refused_before_anything_is_written(model_type, tmp_path):
    """A decoder (GPT-2) and ALBERT (shared layers): the notebook stops at its parameters, naming the model
    type, the supported families and the recipe to add one; no run folder, and no weights are read."""
    REFUSED[model_type]().save_pretrained(tmp_path / "model")   # a config alone: reading weights would fail
    model, out = str(tmp_path / "model"), tmp_path / "out"
    expected = (rf"model = '{model}': model type '{model_type}' is not supported: .*Supported encoder families: "
                r"BERT \(bert\), RoBERTa \(roberta/xlm-roberta\), ELECTRA \(electra\), DistilBERT \(distilbert\), "
                r"DeBERTa-v2/v3 \(deberta-v2\)\. To add an encoder family.*docs/method\.md")
    with pytest.raises(UnsupportedModelError, match=expected):
        run_notebook("finetune", {"model": model, "outputs_root": str(out)})
    assert not out.exists()
    with pytest.raises(UnsupportedModelError, match="shares one layer" if model_type == "albert" else "decoder"):
        load_classifier(model, "RTE")
    with pytest.raises(UnsupportedModelError, match=f"'{model_type}'"):
        Gates(tf.AutoModelForSequenceClassification.from_config(REFUSED[model_type]()))
    assert check_model(save_tiny("distilbert", tmp_path / "ok")) == "distilbert"

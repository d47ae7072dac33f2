"""`Rules`: the `compat` setting as named quirks. Each field switches exactly its own quirk: a small probe per
quirk gives the authors' answer when that field alone is on, and the paper's under every other field."""
import dataclasses

import numpy as np
import pytest
import torch

from conftest import tiny_encoded, tiny_model
from lotterylib.analysis import attention_maps
from lotterylib.core import families
from lotterylib.core.errors import ParameterError
from lotterylib.core.gates import Gates
from lotterylib.core.metrics import compute_metrics
from lotterylib.core.rules import PAPER_RULES, Rules, SETTINGS
from lotterylib.core.tasks import get_task
from lotterylib.core.training import evaluate
from lotterylib.pruning import magnitude, structured, subnetworks
from lotterylib.pruning.search import Scored
from test_structured import Stub

AUTHORS = Rules.from_setting("authors")


def _bytes(*arrays) -> bytes:
    return b"".join(np.ascontiguousarray(np.asarray(a)).tobytes() for a in arrays)


def stsb_stop(rules):
    preds, labels = np.array([0.5, 0.7, 2.5, 2.4, 4.0]), np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    return compute_metrics("STS-B", preds, labels, rules=rules)["stop_score"]


def gate_importance(rules):
    model, head, mlp = tiny_model(seed=4), np.ones((3, 4)), np.ones(3)
    with Gates(model, head, mlp) as gates:
        res = evaluate(model, get_task("RTE"), tiny_encoded(20, seed=1), batch_size=6, gates=gates, importance=True,
                       rules=rules, progress=False)
    return _bytes(res.head_importance, res.mlp_importance)


def phase_start(rules):
    res = structured.structured_search(Stub(seed=3), 1.0, 4, 10, progress=False, rules=rules)
    return _bytes(*[m for s in res.steps for m in s.masks])


def prunable_set(rules):
    return tuple(name for name, _, _ in magnitude.prunable_parameters(tiny_model(), rules))


def magnitude_steps(rules):
    calls = iter(range(100))
    result = magnitude.magnitude_search(tiny_model(), lambda masks: Scored(1.0 if next(calls) < 10 else 0.0), 1.0,
                                        rules=rules,
                                        progress=False)
    return len(result.steps) - 1, result.kept_steps  # steps[0] is the start


def random_s(rules):
    head, mlp = np.zeros((12, 12)), np.zeros(12)
    head.ravel()[:50], mlp[:9] = 1, 1
    return _bytes(*subnetworks.random_s_masks(head, mlp, np.random.default_rng(3), rules))


def bad_m(rules):
    model = tiny_model()
    weights = magnitude.prunable_weights(model)       # the paper's prunable set whatever `rules` says
    good = {n: torch.rand(w.shape, generator=torch.Generator().manual_seed(1)) < 0.4 for n, w in weights.items()}
    return _bytes(*[m.numpy() for m in subnetworks.bad_m_masks(good, np.random.default_rng(9), rules,
                                                                weights).values()])


def value_norms(rules):
    model = tiny_model()
    x = torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(0))
    layer = model.bert.encoder.layer[0]
    with torch.no_grad():
        return _bytes(attention_maps.value_output_norms(layer, x, families.family_of(model), 4, rules).numpy())


PROBES = {"stsb_stop_on_mean_correlation": stsb_stop, "accumulated_gate_gradients": gate_importance,
          "phase_starts_from_failed_step": phase_start, "prune_biases": prunable_set,
          "magnitude_ten_steps_keep_ninth": magnitude_steps, "bernoulli_random_s": random_s,
          "smallest_magnitude_bad_m": bad_m, "attention_output_rows": value_norms}


def test_every_quirk_has_a_probe_and_the_probes_tell_the_settings_apart():
    assert set(PROBES) == set(Rules.quirks())
    for quirk, probe in PROBES.items():
        assert probe(PAPER_RULES) != probe(AUTHORS), quirk
    assert magnitude_steps(PAPER_RULES) == (11, 10) and magnitude_steps(AUTHORS) == (10, 9)


@pytest.mark.parametrize("quirk", Rules.quirks())
def test_each_field_switches_exactly_its_quirk(quirk):
    alone, all_but = Rules(**{quirk: True}), Rules(**{q: q != quirk for q in Rules.quirks()})
    for other, probe in PROBES.items():
        paper, authors = probe(PAPER_RULES), probe(AUTHORS)
        assert probe(alone) == (authors if other == quirk else paper), (quirk, other)
        assert probe(all_but) == (paper if other == quirk else authors), (quirk, other)


def test_from_setting_round_trip_and_other():
    assert SETTINGS == ("paper", "authors")
    for setting in SETTINGS:
        rules = Rules.from_setting(setting)
        assert rules.name == setting and Rules.from_setting(rules.name) == rules
        assert rules.other().other() == rules
    assert Rules.from_setting("paper") == Rules() == PAPER_RULES
    assert not any(dataclasses.astuple(Rules())) and all(dataclasses.astuple(AUTHORS))
    assert Rules().other() == AUTHORS and AUTHORS.other().name == "paper"
    assert Rules(prune_biases=True).name == "custom: prune_biases"
    with pytest.raises(dataclasses.FrozenInstanceError):
        AUTHORS.prune_biases = False   # type: ignore[misc]


@pytest.mark.parametrize("bad", ["Paper", "author", "", "kobayashi"])
def test_a_bad_setting_names_the_allowed_values(bad):
    with pytest.raises(ParameterError, match=f"compat = {bad!r}.*one of paper, authors"):
        Rules.from_setting(bad)


def test_other_rule_names():
    assert subnetworks.other_rule_name("random", PAPER_RULES) == "random (authors)"
    assert subnetworks.other_rule_name("bad", AUTHORS) == "bad (paper)"

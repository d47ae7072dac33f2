"""Attention-pattern classes of Kovaleva et al. (2019) and the head classifier of the paper (docs/method.md
section 7). The paper's annotated maps are not public, so the package makes a labelled set of its own:
synthetic row-stochastic maps laid on real tokenised GLUE sentences, checked by an independent rule-based
labeller; it also reads the authors' archive layout, pads / crops maps as the authors did, and trains the
authors' CNN.

- `layout`: the pattern classes, where the special tokens, punctuation and segments of a sentence are;
- `rules`: the rule-based labeller;
- `generate`: the synthetic maps (the generator's recipes);
- `cnn`: the authors' CNN, its deterministic ensemble training and classification;
- `archive`: the authors' archive of labelled maps;
- `heads`: the labelled sets, one classifier per map kind, a model's maps labelled;
- `shares`: class counts per head and the shares of the super-survivors against all heads.
"""

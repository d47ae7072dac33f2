"""The points where the paper's text and the authors' code disagree, as named switches (docs/method.md, "The
`compat` switch").

The notebook and preset parameter `compat` stays a string ("paper" or "authors", `SETTINGS`); each stage
turns it into a `Rules` once (`Rules.from_setting(compat)`) and hands that to the library. Every field is one
quirk of the authors' code, off in the paper's setting and on in the authors'; the module that reads it is
named beside it.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from .errors import ParameterError

PAPER, AUTHORS = "paper", "authors"
SETTINGS: tuple[str, ...] = (PAPER, AUTHORS)   # the values of the `compat` parameter


@dataclass(frozen=True)
class Rules:
    """One boolean per quirk of the authors' code; all off = the paper's text (the default)."""

    # metrics.compute_metrics: STS-B's stopping score (`stop_score`) is (Pearson + Spearman) / 2, not Pearson.
    stsb_stop_on_mean_correlation: bool = False
    # training.evaluate (importance): gate gradients never zeroed between batches, I = sum_t |sum_{s<=t} g_s|.
    accumulated_gate_gradients: bool = False
    # structured.structured_search: a phase after a failed step ranks its first step by the failed step's importance.
    phase_starts_from_failed_step: bool = False
    # magnitude.prunable_parameters: the Q, K, V, attention-output and intermediate biases are prunable too.
    prune_biases: bool = False
    # magnitude.magnitude_search: at most 10 steps by default, and when every step passes the 9-step mask is kept.
    magnitude_ten_steps_keep_ninth: bool = False
    # subnetworks.random_s_masks: each head and MLP kept with probability k / total (Bernoulli), not exactly k.
    bernoulli_random_s: bool = False
    # subnetworks.bad_m_masks: the bad m-subnetwork is the k smallest-magnitude weights, not the pruned ones.
    smallest_magnitude_bad_m: bool = False
    # attention_maps.value_output_norms: head h's W_O block is the rows h*d:(h+1)*d, not the input columns.
    attention_output_rows: bool = False

    @classmethod
    def from_setting(cls, setting: str) -> Rules:
        """The rules of a `compat` value: "paper" (every quirk off) or "authors" (every quirk on); a
        `errors.ParameterError` naming the allowed values otherwise."""
        if setting not in SETTINGS:
            raise ParameterError(f"Invalid parameter compat = {setting!r}. Allowed: one of {', '.join(SETTINGS)}. "
                                 "Fix: set `compat` to an allowed value (papermill `-p compat VALUE`, Snakemake "
                                 "`--config compat=VALUE`, or the preset's YAML).")
        return cls(**dict.fromkeys(cls.quirks(), setting == AUTHORS))

    @classmethod
    def quirks(cls) -> tuple[str, ...]:
        """The field names, one per quirk."""
        return tuple(f.name for f in fields(cls))

    @property
    def name(self) -> str:
        """A short name for reports and subnetwork rows: "paper" (no quirk on), "authors" (every quirk on),
        else "custom: <the quirks on>"."""
        on = [q for q in self.quirks() if getattr(self, q)]
        return PAPER if not on else AUTHORS if len(on) == len(self.quirks()) else "custom: " + ", ".join(on)

    def other(self) -> Rules:
        """Every quirk switched the other way: the authors' rules for the paper's and back (the lottery stage
        draws its random s- and bad m-subnetworks under both, `subnetworks.other_rule_subnetworks`)."""
        return replace(self, **{q: not getattr(self, q) for q in self.quirks()})


PAPER_RULES = Rules()   # the default of every library function that takes `rules`
